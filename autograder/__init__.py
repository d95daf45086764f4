"""dlkit autograder: hidden pytest checks per assignment and a sandboxed grading harness.

Along the data path (one responsibility per module, like nbgrader's ``preprocessors/``):

* ``autograder.api``        the API hidden checks use (``check``, ``fail``, ``expect_array``, ...)
* ``autograder.safefile``   reading submitted files without trusting them
* ``autograder.cells``      the answer cells: read, parsed and analysed (never executed), imports policies
* ``autograder.session``    one submission's sandbox session and the ``student`` proxy
* ``autograder.sandbox``    the sandboxed worker process (limits, isolation modes, deadlines)
* ``autograder.wire``       the wire codec both sides share (one frame reader and writer)
* ``autograder.isolation``  the worker's OS isolation (namespaces, private root, Landlock)
* ``autograder.worker``     the worker's request server (runs INSIDE the sandbox)
* ``autograder.plugin``     the pytest plugin running the hidden checks
* ``autograder.results``    the results schema (one ``Results`` type, built in one place)
* ``autograder.harness``    grade one submission: ``grade(assignment, path) -> Results``
* ``autograder.batch``      grade nbgrader's ``submitted/`` tree in parallel, resumably
* ``autograder.gradebook``  nbgrader gradebook writes (scores and comments, batched)
* ``autograder.feedback``   check messages for nbgrader's channels (comments, cell outputs)
* ``autograder.preprocessors``  ``nbgrader autograde`` through the sandboxed checks (nbgrader_config.py)
* ``autograder.gradescope`` a Gradescope autograder zip running the same checks
* ``autograder.release``    the student edition (``make release``)

Command line: ``python -m autograder {grade,batch,release,gradescope} ...`` (see ``__main__``).
"""
