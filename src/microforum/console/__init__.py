"""The local console: a web page served by `microforum up` that shows the stack at a glance.

What the AWS console shows of an ALB, for the local stack: the architecture (listener, rules by
priority, target groups, targets), target health with ALB's states and reason codes, per target
group graphs of ALB's CloudWatch figures, the latest access-log lines, and a restart button per
service. See docs/console.md.

Pure parts (no I/O): `topology` (the picture's facts from stack.yaml), `picture` and `charts`
(SVG), `history` (figures sampled over the last minutes), `logs` (access-log lines parsed and
filtered), `restarts` (a rolling replacement's progress). The shell: `server` (HTTP, token,
sampling loop) and `static/` (the page, its script and style; no build step, no CDN).
"""
