"""Finding and (re)loading plugins and sources while the bot runs: the reloader, the
plugins and sources services, and the file watcher."""
