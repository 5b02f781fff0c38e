"""``streamrec bench``: a streaming load benchmark of one worker against a bare echo.

Modules, one concept each:

* :mod:`~streams.bench.stats`: percentiles, rates and pipeline-to-echo ratios;
* :mod:`~streams.bench.promtext`: reading counters and histograms from ``/metrics`` text;
* :mod:`~streams.bench.procstat`: CPU seconds and RSS of a process from ``/proc``;
* :mod:`~streams.bench.clickgen`: valid click events over N users, and a fast backlog loader;
* :mod:`~streams.bench.loadgen`: a paced load-generator process (fixed events/s);
* :mod:`~streams.bench.echo`: the echo reference (consume, coalesce per user, pipelined SET);
* :mod:`~streams.bench.targets`: the worker and the echo behind one interface;
* :mod:`~streams.bench.phases`: per-run, per-phase topic names, groups and key prefixes;
* :mod:`~streams.bench.servers`: facts about the broker and Redis, and clean-up on your own servers;
* :mod:`~streams.bench.live`: offered load at fixed rates; :mod:`~streams.bench.catchup`: a backlog;
* :mod:`~streams.bench.machine`, :mod:`~streams.bench.report`, :mod:`~streams.bench.plot`: output;
* :mod:`~streams.bench.run`: the whole benchmark, start to finish.
"""
