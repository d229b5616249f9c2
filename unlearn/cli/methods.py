"""`unlearn methods`: list the registered unlearning methods and their recipe fields."""

import dataclasses

import click


@click.command()
def methods():
    """List unlearning methods with their config fields and defaults."""
    from unlearn.methods import get_method, method_names

    for name in method_names():
        m = get_method(name)
        fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(m.config_cls)
                           if f.name != "name")
        click.echo(f"{name:12s} {m.summary}")
        if fields:
            click.echo(f"{'':12s} fields: {fields}")
