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
# The course id nbgrader's exchange commands (release_assignment, collect, ...) need. Override
# with DLKIT_COURSE_ID. The exchange is an absolute path (a shared hub exchange is usually
# /srv/nbgrader/exchange): DLKIT_EXCHANGE, else exchange/ in this course directory.
c.CourseDirectory.course_id = os.environ.get("DLKIT_COURSE_ID", "dlkit")
c.Exchange.root = os.path.abspath(os.environ.get("DLKIT_EXCHANGE")
                                  or os.path.join(c.CourseDirectory.root, "exchange"))
