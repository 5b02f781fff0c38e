"""streamrec streams: the Faust app, settings, records, topics, runtime and CLI."""
