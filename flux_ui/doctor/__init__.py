"""The set-up doctor: configuration, endpoints, credentials and deployments checked as the app uses them.

The checks reuse what the app runs: the settings loader's own verdict on the configuration, the
client's probe and its typed errors for the service, and the client itself for ``--generate``.
The report (:mod:`flux_ui.doctor.report`) is redacted, so it can be pasted into a GitHub issue.

    from flux_ui.doctor import Options, diagnose, render_text
    print(render_text(await diagnose(Options(generate=False))))
"""

from flux_ui.doctor.report import Report, render_json, render_text
from flux_ui.doctor.run import Options, diagnose

__all__ = ["Options", "Report", "diagnose", "render_json", "render_text"]
