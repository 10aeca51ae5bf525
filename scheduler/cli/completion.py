"""``carbonshift completion bash|zsh|fish``: print a shell completion script.

The script calls ``carbonshift`` back with ``_CARBONSHIFT_COMPLETE`` set (click's
protocol), so completions follow the installed version. Install it once:

\b
  bash:  carbonshift completion bash > ~/.local/share/bash-completion/completions/carbonshift
  zsh:   carbonshift completion zsh > "${fpath[1]}/_carbonshift"
  fish:  carbonshift completion fish > ~/.config/fish/completions/carbonshift.fish
"""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash:  carbonshift completion bash > ~/.local/share/bash-completion/completions/carbonshift
    zsh:   carbonshift completion zsh > "${fpath[1]}/_carbonshift"
    fish:  carbonshift completion fish > ~/.config/fish/completions/carbonshift.fish
    Or evaluate it in your shell's rc file: eval "$(carbonshift completion bash)".
    """
    from click.shell_completion import get_completion_class

    from scheduler.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None  # the choice above lists only shells click knows
    click.echo(cls(cli, {}, "carbonshift", "_CARBONSHIFT_COMPLETE").source())
