"""Message sources and the source-neutral dispatcher that consumes them (see ``source.py``);
a new source is a module here implementing ``Source`` (docs/architecture.md, "Packages")."""
