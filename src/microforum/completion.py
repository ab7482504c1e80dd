"""`microforum completion bash|zsh|fish`: shell completion scripts, made from the parser itself.

The commands, their options and the choices of their values are read from the argparse parser
that `microforum` runs, so a new option completes without anyone editing a script. bash gets a
function over `COMP_WORDS`; zsh runs the same through `bashcompinit`; fish gets `complete` lines.
A value after `--stack`, `--template`, `--outputs` completes as a file name.

    microforum completion bash > ~/.local/share/bash-completion/completions/microforum
    microforum completion zsh > "${fpath[1]}/_microforum"
    microforum completion fish > ~/.config/fish/completions/microforum.fish
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SHELLS = ("bash", "zsh", "fish")
FILE_OPTIONS = ("--stack", "--template", "--outputs")


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("images", "build")
    help: str
    options: tuple[tuple[str, str, tuple[str, ...], bool], ...]  # (flag, help, choices, takes a value)
    positional_choices: tuple[str, ...]
    children: tuple[str, ...]


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `completion` to the `microforum` parser."""
    p = subparsers.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    p.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    p.set_defaults(func=_completion)


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = ""
) -> Iterator[Command]:
    """The parser and every sub-command under it, depth first."""
    options, children = [], []
    positional: tuple[str, ...] = ()
    subs: dict[str, tuple[argparse.ArgumentParser, str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            subs = {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
            children = list(subs)
        elif action.option_strings:
            flag = max(action.option_strings, key=len)
            options.append((flag, action.help or "", tuple(action.choices or ()), action.nargs != 0))
        elif action.choices:
            positional = tuple(str(c) for c in action.choices)
    yield Command(path, help, tuple(options), positional, tuple(children))
    for name, (sub, sub_help) in subs.items():
        yield from commands(sub, (*path, name), sub_help)


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for `shell`."""
    found = list(commands(parser))
    if shell == "fish":
        return _fish(found)
    bash = _bash(found)
    if shell == "zsh":
        return "#compdef microforum\nautoload -U +X bashcompinit && bashcompinit\n" + bash
    return bash


def _bash(found: list[Command]) -> str:
    steps = "|".join(f'"{" ".join(c.path[:-1])}/{c.path[-1]}"' for c in found if c.path)
    cases = []
    for c in found:
        words = [*c.children, *c.positional_choices, *(o[0] for o in c.options)]
        cases.append(f'    "{" ".join(c.path)}") words="{" ".join(words)}" ;;')
    values = [f'    {o[0]}) COMPREPLY=($(compgen -W "{" ".join(o[2])}" -- "$cur")); return ;;'
              for c in found for o in c.options if o[2]]  # fmt: skip
    return "\n".join([
        "# bash completion for microforum (made by `microforum completion bash`)",
        "_microforum() {",
        '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" words="" i',
        "  for ((i = 1; i < COMP_CWORD; i++)); do",
        '    case "$cmd/${COMP_WORDS[i]}" in',
        f'      {steps}) cmd="${{cmd:+$cmd }}${{COMP_WORDS[i]}}" ;;',
        "    esac",
        "  done",
        '  case "$prev" in',
        f"    {'|'.join(FILE_OPTIONS)}) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;",
        *sorted(set(values)),
        "  esac",
        '  case "$cmd" in',
        *cases,
        "  esac",
        '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        "complete -F _microforum microforum",
        "",
    ])  # fmt: skip


def _fish(found: list[Command]) -> str:
    lines = ["# fish completion for microforum (made by `microforum completion fish`)",
             "complete -c microforum -f"]  # fmt: skip
    for c in found:
        if c.path:
            parent = c.path[:-1]
            siblings = " ".join(x.path[-1] for x in found if x.path[:-1] == parent and x.path)
            cond = f"not __fish_seen_subcommand_from {siblings}"
            if parent:
                cond = f"__fish_seen_subcommand_from {parent[-1]}; and {cond}"
            lines.append(f"complete -c microforum -n {_q(cond)} -a {c.path[-1]} -d {_q(c.help)}")
        where = f"__fish_seen_subcommand_from {c.path[-1]}" if c.path else "__fish_use_subcommand"
        for flag, text, choices, value in c.options:
            spec = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
            extra = " -r -F" if flag in FILE_OPTIONS else f" -x -a {_q(' '.join(choices))}" if choices else ""
            extra = extra or (" -r" if value else "")
            lines.append(f"complete -c microforum -n {_q(where)} {spec}{extra} -d {_q(text)}")
        if c.positional_choices and c.path:
            lines.append(f"complete -c microforum -n {_q(where)} -a {_q(' '.join(c.positional_choices))}")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _completion(args: argparse.Namespace) -> int:
    from microforum.cli import build_parser

    sys.stdout.write(script(args.shell, build_parser()))
    return 0
