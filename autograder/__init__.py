"""dlkit autograder: hidden pytest checks per assignment and a sandboxed grading harness.

* ``autograder.api``      the API hidden checks use (``check``, ``fail``, ``expect_array``, ...)
* ``autograder.harness``  grade one submission: ``grade_notebook(assignment, path) -> dict``
* ``autograder.sandbox``  the sandboxed worker process (limits, isolation, protocol)
* ``autograder.worker``   the code that runs INSIDE the sandbox (with wire.py, isolation.py)
* ``autograder.batch``    grade nbgrader's ``submitted/`` tree in parallel, resumably
* ``autograder.gradebook``/``autograder.feedback``  nbgrader gradebook writes, feedback files

Command line: ``python -m autograder {grade,batch,release} ...`` (see ``__main__``).
"""
