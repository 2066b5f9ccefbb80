"""The entry points: the command line (:mod:`.cli`: ``taskgen train``, ``taskgen lopt …``), the work of
``taskgen train`` (:mod:`.train_task`) and the text a run ends with (:mod:`.run_text`)."""
