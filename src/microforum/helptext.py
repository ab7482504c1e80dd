"""What `--help` says beyond the options: each command's description and examples.

Each area's `command` module declares its options (with their help); this table adds, per
command, a paragraph saying what it does and examples to copy. `apply(parser)` puts them on the
parser `cli.build_parser` made; a command's own description, when it has one, is kept.
tests/test_cli_help.py checks that every command has both, so a new command must add its row.
"""

from __future__ import annotations

import argparse
import textwrap

from microforum.spec import defaults as d

WIDTH = 78  # descriptions are wrapped here, examples are printed as written
# command path -> (description, examples)
HELP: dict[str, tuple[str, tuple[str, ...]]] = {
    "": (
        "",  # cli.DESCRIPTION
        ("microforum init my-forum", "microforum up", "microforum status", "microforum deploy --help"),
    ),
    "serve": ("", ("microforum serve users --port 3001", "microforum serve monolith --workers 4")),
    "db-setup": (
        "",
        (
            "microforum db-setup    # with DATABASE_URL=postgresql://admin@db/postgres and "
            "USERS_DATABASE_URL=postgresql://users:PW@db/users (THREADS_, POSTS_) set",
        ),
    ),
    "up": (
        "Run the whole stack in the foreground: each service's replicas on dynamic ports, registered "
        "in their target groups behind the local ALB on local.port (8080), plus a web console "
        "(its URL, with a one-time token, is printed and kept in .microforum/control.json). "
        "Ctrl-C drains and stops everything.",
        ("microforum up", "microforum up --stack other.yaml --port 0", "microforum up --containers"),
    ),
    "down": (  # `down` comes with the containers work; its row is here for when it lands
        "Stop the stack of this stack file and remove what it left behind (its containers, its "
        "control file), whatever happened to its `up`: stopped, killed or crashed.",
        ("microforum down", "microforum down --stack other.yaml"),
    ),
    "logs": (
        "The logs of a service or replica, interleaved in time: per replica from the running local "
        "stack, or per task from CloudWatch Logs with --region and --stack-name.",
        (
            "microforum logs users --since 10m",
            "microforum logs -f",
            "microforum logs posts --region eu-west-1 --stack-name my-forum",
        ),
    ),
    "status": (
        "Target health of the running stack per target group, as `aws elbv2 describe-target-health` "
        "shows it (state, reason code, description), with the group's figures: requests, target "
        "4xx/5xx, ELB 5xx, p50/p99 response time.",
        ("microforum status", "microforum status --json | jq '.target_groups.users.targets'"),
    ),
    "restart": (
        "Rolling replacement of a service's replicas in the running stack, as an ECS deployment: "
        "new replicas start and turn healthy, then the old ones drain. Returns when it is done.",
        ("microforum restart users",),
    ),
    "images": (
        "Container images of the built-in services, one per service, with podman or docker.",
        (
            "microforum images build",
            "microforum images push --registry 123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ),
    ),
    "images build": (
        "Build one image per service from the Dockerfile.",
        ("microforum images build", "microforum images build users posts --tag v2"),
    ),
    "images push": (
        "Push built images to a registry; for ECR the password comes from ecr:GetAuthorizationToken.",
        ("microforum images push --registry 123456789012.dkr.ecr.eu-west-1.amazonaws.com --tag v2",),
    ),
    "render": (
        "Print what `deploy` would apply, without calling AWS: the cluster template, task "
        "definitions, target groups, listener rules and services.",
        ("microforum render", "microforum render --stack-name my-forum > plan.json"),
    ),
    "deploy": (
        "Create or update the stack on AWS (VPC, ALB, ECS on EC2, RDS), push the images, reconcile "
        "target groups, rules and services, wait until stable, print the URL. A second run with "
        "nothing changed makes no change.",
        (
            "microforum deploy --region eu-west-1 --stack-name my-forum --dry-run",
            "microforum deploy --region eu-west-1 --stack-name my-forum",
        ),
    ),
    "destroy": (
        "Remove everything `deploy` created (images only with --delete-images).",
        ("microforum destroy --region eu-west-1 --stack-name my-forum --yes",),
    ),
    "schema": (
        "Print stack.yaml's JSON Schema (2020-12), made from the loader's own keys and limits. "
        "Editors with the YAML language server use it through the first line of stack.yaml: "
        "# yaml-language-server: $schema=./stack.schema.json",
        ("microforum schema > stack.schema.json",),
    ),
    "init": (
        f"Write a starter {d.STACK_FILE} (the original architecture: users, threads, posts and the "
        "monolith behind one ALB) and stack.schema.json, then say what to run next.",
        ("microforum init", "microforum init my-forum && cd my-forum && microforum up"),
    ),
    "completion": (
        "Print a completion script for bash, zsh or fish (commands, options, their choices).",
        (
            "microforum completion bash > ~/.local/share/bash-completion/completions/microforum",
            'microforum completion zsh > "${fpath[1]}/_microforum"',
            "microforum completion fish > ~/.config/fish/completions/microforum.fish",
        ),
    ),
}


def subcommands(parser: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every parser by its command path ("" for `microforum` itself, "images build", ...)."""
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= subcommands(sub, f"{path} {name}".strip())
    return found


def apply(parser: argparse.ArgumentParser) -> None:
    """Give every command its description and examples (`--help` shows them as written)."""
    for path, sub in subcommands(parser).items():
        description, examples = HELP.get(path, ("", ()))
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        text = sub.description or description
        sub.description = "\n".join(textwrap.fill(p, WIDTH) for p in text.split("\n")) if text else None
        if examples:
            sub.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
