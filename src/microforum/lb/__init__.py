"""The local Application Load Balancer: ALB's routing, health checks and HTTP behaviour.

Pure cores (`rules`, `health`, `targets`, `desync`, `headers`, `accesslog`, `metrics`) decide;
`proxy`, `pool` and `balancer` do the I/O on asyncio (uvloop when available) with httptools.
"""
