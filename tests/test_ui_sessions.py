"""A new session's set-up stays cheap: no API schema is rebuilt once the app has served one."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import pydantic
import pytest
from gradio.state_holder import SessionState

from conftest import FAST
from flux_ui.emulator import EmulatorConfig
from flux_ui.runtime import start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import build_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gr.Blocks]:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path_factory.mktemp("outputs"))}, dotenv_path=None)
    runtime = start_runtime(settings, EmulatorConfig(rng_seed=3), FAST)
    try:
        yield build_demo(runtime)
    finally:
        runtime.close_sync()


def test_upload_buttons_answer_with_their_own_schema(demo: gr.Blocks) -> None:
    buttons = [b for b in demo.blocks.values() if isinstance(b, gr.UploadButton)]
    assert buttons, "the edit tab has upload buttons"
    for button in buttons:
        fresh = gr.UploadButton.api_info(button)  # what Gradio itself would compute
        assert button.api_info() == fresh
        assert button.api_info() is button.api_info()


def test_a_new_session_builds_no_json_schema(demo: gr.Blocks, monkeypatch: pytest.MonkeyPatch) -> None:
    SessionState(demo)  # the first session fills the components' own caches
    calls: list[str] = []
    original = pydantic.BaseModel.model_json_schema.__func__  # type: ignore[attr-defined]

    def counted(cls: type[pydantic.BaseModel], *args: object, **kwargs: object) -> object:
        calls.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(pydantic.BaseModel, "model_json_schema", classmethod(counted))
    SessionState(demo)
    assert calls == []
