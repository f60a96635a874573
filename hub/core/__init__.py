"""The small core: the unified client record, the timeline, the outbox and bus, and the plugin contract."""
