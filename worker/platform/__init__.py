"""The process platform the adapters stand on: AWS clients (:mod:`.aws`), the queue, topic
and table names resolved or created (:mod:`.resources`), the liveness file
(:mod:`.health`), EMF metrics (:mod:`.metrics`) and the one time seam (:mod:`.clock`).
"""
