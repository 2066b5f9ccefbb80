"""The entry points: the command line (:mod:`.cli`: ``taskgen train``, ``taskgen lopt …``, ``taskgen report``),
``make run`` (:mod:`.run_default`), the HTML report (:mod:`.report`) and the work of ``taskgen train``
(:mod:`.train_task`)."""
