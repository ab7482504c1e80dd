"""microforum's benchmark harness: side-by-side runs against the original architecture.

Pure parts (parsing wrk output and /proc files, statistics, ratios, noise, configs) live in
`wrk`, `procfs`, `stats` and `configs`; process handling and measurement in `procs` and
`measure`; the scenarios in `scenarios`; the Markdown report and plots in `report`.
"""
