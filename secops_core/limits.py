"""Limits that shape what the runtime accepts and what it lets reach a model.

Each value says why it is what it is; change them here and nowhere else.
"""

# SQS caps a message at 1 MiB and AgentCore's payloads are far below its own cap in
# practice: a single WAF record is a few KiB. Anything larger is not an event.
MAX_PAYLOAD_BYTES = 1024 * 1024

# A single string field (URI, user agent, header value, args) above this is not a
# plausible request that a WAF logged; WAF itself truncates oversize components.
MAX_FIELD_CHARS = 64 * 1024

# Identifiers (event id, rule ids, labels) are short in every AWS schema.
MAX_ID_CHARS = 512

# A WAF log record nests about eight levels (record, ruleGroupList, a group, its
# terminatingRule, ruleMatchDetails, a detail, matchedData, an item). Far deeper is not
# a record, and recursing into it would exhaust the stack before anything rejects it.
MAX_EVENT_DEPTH = 32
# Values (strings, numbers, objects, arrays) in one event, wherever they sit.
MAX_EVENT_FIELDS = 20_000
# Nesting of a whole request body. json.loads accepts about 990 levels when called near
# the bottom of the stack, but parsing the same body again deeper in the stack (the
# AgentCore SDK does, under Starlette's middleware) overflows it: every parser of a
# body must reject the same bodies, so all of them stop far below either limit.
MAX_JSON_DEPTH = 64

# WAF logs every header of a request; more than this is a flood, not a request.
# We keep the first ones and mark the event as truncated rather than reject it.
MAX_HEADERS = 100
MAX_LABELS = 100
MAX_RULE_MATCHES = 200

# A monitor request carries at most this many events; the worker chunks above it.
MAX_MONITOR_EVENTS = 5000

# What reaches a model: enough to recognize an attack, small enough to keep the prompt
# cheap (Nova Lite bills per token) and to blunt long prompt-injection essays.
PROMPT_URI_CHARS = 1024
PROMPT_ARGS_CHARS = 1024
PROMPT_USER_AGENT_CHARS = 512
PROMPT_HEADER_VALUE_CHARS = 256
PROMPT_MAX_HEADERS = 20
PROMPT_MATCHED_DATA_CHARS = 256

# Monitor look-back bounds: the seed used 24 h; a week is the most a TTL'd store keeps.
MAX_MONITOR_HOURS = 24 * 7

# A client that has not finished sending its body by then is stalled (or a slowloris):
# answer and free the connection instead of holding it open forever.
BODY_READ_TIMEOUT_S = 30.0
