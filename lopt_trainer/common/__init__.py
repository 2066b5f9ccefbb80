"""Small helpers every other part of ``lopt_trainer`` may use; they import nothing of the toolkit above them.

* :mod:`.run_files` — the one JSON writer/cleaner, ``command.json``, reading JSON back.
* :mod:`.task_pool` — loading a spec pool and filtering it by column and cost.
* :mod:`.checkpoint` — msgpack checkpoints of meta-training (read by the θ loader too).
* :mod:`.program_cache` — compiled XLA programs, compiled in the background and kept in an LRU.
* :mod:`.ray_local` — starting Ray on loopback only.
"""
