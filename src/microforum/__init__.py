"""microforum: a forum API as Python microservices behind an Application Load Balancer.

Run locally with an ALB-faithful load balancer (`microforum up`), deployed to Amazon ECS
(`microforum deploy`), both from one `stack.yaml`.
"""

__version__ = "0.1.0"
