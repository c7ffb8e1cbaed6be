"""The kernel every other package stands on; it imports none of them.

- `errors`: the one exception tree (client and server);
- `exitcodes`: the exit statuses of both command lines;
- `settings`: every PRIVFACE_* environment variable, typed;
- `resources`: where the shipped artifacts are, and the user's key folder;
- `private_files`: secret keys and logs written mode 0600 from the first byte, atomically, in a 0700 folder;
- `signals`: the process's own SIGINT/SIGTERM/SIGQUIT handlers kept when Concrete's native code loads;
- `protocol` and `auth`: the wire protocol between the user's client and the server (bodies, error codes,
  API version; request signing and its verification).

Layers and why the kernel is a package of its own: docs/architecture.md.
"""
