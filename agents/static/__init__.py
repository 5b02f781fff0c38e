"""Files of the worker's built-in status page (served at ``/ui``; no external assets)."""
