"""streamrec agents: thin Faust agents that decode events, call ``models`` and send."""
