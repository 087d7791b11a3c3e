"""Property-based (hypothesis) tests of every parser and sanitizer that meets hostile input."""
