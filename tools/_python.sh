# Sourced by the shell entry points: pick the interpreter that has mmwst.
# Order: $PYTHON, an activated virtual environment, the checkout's .venv, python3.
_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        PYTHON=python
    elif [ -x "$_repo/.venv/bin/python" ]; then
        PYTHON="$_repo/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
export PYTHONPATH="$_repo${PYTHONPATH:+:$PYTHONPATH}"
