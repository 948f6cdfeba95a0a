"""The command server: ``targets`` commands started warm, in a fork of a process that has
already imported ``targets``.

A ``targets`` command spends most of a short run starting up: the interpreter, then click,
pydantic and the models of every file format (about 250 ms on a 2-core machine, before
any work). Mercurial's ``chg`` answers the same problem for ``hg``; this is that design.

- **The client** (:mod:`.client`, the ``targets`` console script) imports almost nothing.
  It connects to the server's Unix socket and hands over its standard input, output and
  error (the file descriptors themselves, ``SCM_RIGHTS``), its arguments, environment,
  working directory and umask. It forwards the signals it receives (Ctrl-C, ``kill``) to
  the worker and exits with the worker's status, or dies of the same signal.
- **The server** (:mod:`.server`, ``python -m targets.commandserver``) imports the CLI and
  what its commands use, then forks one **worker** (:mod:`.worker`) per command. The
  worker takes the client's descriptors, environment, directory and umask and runs the
  command as ``targets`` would in-process: nothing of one command is left for the next,
  because each runs in a fresh fork. When the client dies (``kill -9``), the kernel ends
  its worker (``SIGIO`` on the closed socket) as it would have ended the in-process
  command.
- **When there is no server** the command runs in-process, as always, and starts one in
  the background for the next command. A server serves only clients with the same
  interpreter, ``sys.path``, locale and Python settings, user, and (on Linux) mount and
  pid namespaces and cgroup; it checks before every command that none of the files it
  imported changed (an upgrade, an edited plugin) and otherwise steps aside, so a command
  never runs stale code.
- **Where.** The socket lives in ``$XDG_RUNTIME_DIR/targets-cmd`` or
  ``$TMPDIR/targets-cmd-<uid>`` (mode 0700, checked before use), is itself mode 0600, and
  the server serves only its own user (``SO_PEERCRED``).
- **How long.** The server exits after ``TARGETS_SERVER_PERSIST`` seconds (default 600)
  without a command; ``TARGETS_SERVER_PERSIST=0`` turns it off (every command starts
  cold). ``python -m targets`` always runs in-process.
"""
