"""nbgrader configuration for the dlkit course directory (this repository's root).

Source notebooks live in notebooks/<assignment>/<assignment>.ipynb. Points that count come from the
sandboxed autograder (python -m autograder), never from nbgrader executing student code; see the
README's TA workflow.
"""
import os

c = get_config()  # noqa: F821  (nbgrader injects get_config)

# the course directory is where this file is (nbgrader wants an absolute path)
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "notebooks"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ExecutePreprocessor.timeout = 120
c.Exchange.root = "exchange"
