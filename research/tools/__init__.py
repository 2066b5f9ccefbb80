"""Developer tools that check the toolkit as a whole: fuzzing the files it reads back (:mod:`.fuzz_files`) and
fingerprinting its outputs across two trees (:mod:`.outputs_fingerprint`)."""
