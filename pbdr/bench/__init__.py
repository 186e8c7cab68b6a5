"""``pbdr bench``: a gradient benchmark suite scored against finite differences.

- :mod:`pbdr.bench.manifest`: the TOML manifest of cases, checked up front;
- :mod:`pbdr.bench.refs`: the FD references, cached per case by a hash of the scene files;
- :mod:`pbdr.bench.worker`: one integrator on one case, in its own process;
- :mod:`pbdr.bench.run`: every integrator on every case, scored;
- :mod:`pbdr.bench.score`: block error, z, efficiency (on :func:`pbdr.validate.compare`);
- :mod:`pbdr.bench.report`: results.json, report.md, index.html, summary.png;
- :mod:`pbdr.bench.cli`: ``pbdr bench list|refs|run``.
"""
