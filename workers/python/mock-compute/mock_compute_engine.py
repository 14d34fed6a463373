"""Mock compute worker: sleeps, holds memory and returns a payload of the size asked, like HTC-Grid's mock engine.

event = {"worker_arguments": [duration_ms, memory_mib, output_bytes]}, every argument optional and given as a number
or a numeric string (HTC-Grid's clients send strings such as ["1000", "1", "1"]):

- duration_ms: how long the task takes, in milliseconds. 0 (the default) returns at once: a true no-op, for
  measuring the grid's own throughput.
- memory_mib: MiB allocated and touched while the task runs (default 0).
- output_bytes: length of a padding string added to the result, to exercise large results (default 0).

Handler: mock_compute_engine.lambda_handler
"""

import time

_MIB = 1024 * 1024
_PAGE = 4096


def lambda_handler(event, context):
    args = event.get("worker_arguments", []) if isinstance(event, dict) else []
    duration_ms = _number(args, 0, "duration_ms")
    memory_mib = _number(args, 1, "memory_mib")
    output_bytes = _number(args, 2, "output_bytes")

    result = {"duration_ms": duration_ms}
    task_id = _task_id(context)
    if task_id is not None:
        result["task_id"] = task_id
    if duration_ms == 0 and memory_mib == 0 and output_bytes == 0:
        return result

    held = _touch_memory(memory_mib)
    if duration_ms > 0:
        time.sleep(duration_ms / 1000.0)
    if held is not None:
        result["memory_mib"] = memory_mib
    if output_bytes > 0:
        result["output"] = "x" * output_bytes
    return result


def _number(args, index, name):
    if len(args) <= index:
        return 0
    raw = args[index]
    try:
        value = int(float(raw))
    except (TypeError, ValueError):
        raise ValueError(f"worker_arguments[{index}] ({name}) must be a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"worker_arguments[{index}] ({name}) must not be negative, got {raw!r}")
    return value


def _touch_memory(memory_mib):
    if memory_mib <= 0:
        return None
    block = bytearray(memory_mib * _MIB)
    for offset in range(0, len(block), _PAGE):
        block[offset] = 1
    return block


def _task_id(context):
    """The grid's task id, from the Lambda context's client_context.custom, when the grid sent one."""
    client_context = getattr(context, "client_context", None)
    custom = getattr(client_context, "custom", None)
    if isinstance(custom, dict):
        return custom.get("task_id", custom.get("taskId"))
    return None
