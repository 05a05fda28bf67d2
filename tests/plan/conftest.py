import json

import pytest

from scalinglab.cli import main


@pytest.fixture
def cli(capsys):
    """Run ``scalinglab ARGS`` in-process; returns (rc, stdout, stderr)."""

    def run(*args: str):
        rc = main([str(a) for a in args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


@pytest.fixture
def cli_json(cli):
    def run(*args: str):
        rc, out, err = cli(*args, "--json")
        assert rc == 0, err
        return json.loads(out)

    return run
