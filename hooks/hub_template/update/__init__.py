"""`hub-template update`'s parts, each one concern (the command itself is
hub_template.federation):

- hubs.py       what the federation holds: its hubs, and each one's result
- sources.py    template sources (one mirror each) and which one is trusted
- repository.py each hub's state in git, and the git copier runs in
- one_hub.py    one hub: decide, then update (copier), restored when it fails
- worktrees.py  hubs in parallel, each worker in its own worktree, written back
- signals.py    Ctrl-C and SIGTERM: stop cleanly, never inside a write
- release_notes.py what a release tells each hub: answers added, stand-ins,
                behaviour changes (CHANGELOG.md)
- preview.py    `--check --diff`: each hub's update, in a scratch worktree
- summary.py    the summary printed at the end

Every git command goes through hub_template.git_runner.
"""
