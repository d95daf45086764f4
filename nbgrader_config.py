"""nbgrader configuration for the dlkit course directory (this repository's root).

Source notebooks live in notebooks/<assignment>/<assignment>.ipynb. ``nbgrader autograde`` (and
formgrader's Autograde button) never executes a submission: the kit's preprocessors
(autograder/preprocessors.py) replace nbgrader's Execute and SaveAutoGrades steps, so every
score comes from the sandboxed hidden checks, the same code path as ``make grade``.
"""
import os
import sys

c = get_config()  # noqa: F821  (nbgrader injects get_config)

# the course directory is where this file is (nbgrader wants an absolute path)
ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:            # `import autograder` from any working directory
    sys.path.insert(0, ROOT)
c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "notebooks"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# never copied between course folders: the autograder's results (with staff notes) and journal
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                            "results.json", ".dlkit-autograde*"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# The course id nbgrader's exchange commands (release_assignment, collect, ...) need. Override
# with DLKIT_COURSE_ID. The exchange is an absolute path (a shared hub exchange is usually
# /srv/nbgrader/exchange): DLKIT_EXCHANGE, else exchange/ in this course directory.
c.CourseDirectory.course_id = os.environ.get("DLKIT_COURSE_ID", "dlkit")
c.Exchange.root = os.path.abspath(os.environ.get("DLKIT_EXCHANGE")
                                  or os.path.join(c.CourseDirectory.root, "exchange"))

# --- autograding: the sandboxed hidden checks, never a kernel ---------------------------------
# Named as strings (imported when autograde runs, from this folder: sys.path above): should the
# kit be unimportable, autograde fails instead of falling back to nbgrader's Execute.
c.Autograde.autograde_preprocessors = [
    "autograder.preprocessors.DlkitGrader",           # replaces Execute: grades in the sandbox
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "autograder.preprocessors.SaveCheckResults",      # replaces SaveAutoGrades: scores + comments
    "nbgrader.preprocessors.AssignLatePenalties",     # nbgrader's LateSubmissionPlugin
    "nbgrader.preprocessors.CheckCellMetadata",
]
# The submitted file is read like the batch reads it (no links, size cap; an unusable file
# becomes a placeholder page and scores 0 with the reason) and its nbgrader metadata is taken from
# the source notebook, so nbgrader itself never refuses a submission the batch grades.
c.Autograde.exporter_class = "autograder.preprocessors.SafeNotebookExporter"
c.Autograde.sanitize_preprocessors = [
    "autograder.preprocessors.NormalizeMetadata",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# Sandbox budgets of one submission (autograder/sandbox.py Limits; `make grade` reads them too):
# c.DlkitGrader.memory_mb = 1536      # the whole sandbox process tree
# c.DlkitGrader.submission_s = 60     # wall clock for all checks of one submission
# c.DlkitGrader.cpu_s = 120, nproc = 24, fsize_mb = 16, tmpfs_mb = 64, start_timeout_s = 30

# Late submissions: nbgrader's own LateSubmissionPlugin (due dates: formgrader's "Manage
# Assignments" or `nbgrader db assignment add ID --duedate=...`). "zero": a late submission
# scores 0; "none": late submissions are only flagged. DLKIT_LATE_PENALTY overrides.
c.LateSubmissionPlugin.penalty_method = os.environ.get("DLKIT_LATE_PENALTY", "zero")
