"""Running events: the dispatcher and its work items (events, ``call_later``, periodic
ticks), the processor chain with its match fast path, and the worker pool."""
