"""The one registry of benchmarks: every Task of every benchmark module, by name, in the
order commands list them. Adding a benchmark = one module defining `TASKS` (a tuple of Task)
plus its entry in FAMILIES. Nothing outside prefixopt/benchmarks/ branches on a name.
"""

from __future__ import annotations

from prefixopt.benchmarks import arc, gsm8k, hellaswag, mmlu
from prefixopt.benchmarks.task import Task
from prefixopt.errors import PrefixoptError

FAMILIES = (mmlu, gsm8k, arc, hellaswag)
TASKS: dict[str, Task] = {task.name: task for family in FAMILIES for task in family.TASKS}
BENCHMARKS: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> Task:
    """The Task called `name`; an unknown name is a one-line error listing the valid ones."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise PrefixoptError(
            f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARKS)}"
        ) from None
