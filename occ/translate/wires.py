"""One wire selector for both the streaming and the non-streaming path.

The seed had a streaming path that lacked the Anthropic-wire branch, so OpenAI-format tools hit
``/v1/messages`` and drew 400s (its root cause 5). Here each protocol is one :class:`Wire` value
and both paths ask :func:`wire_for` for it. Sans-IO.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from occ.config.model import ModelConfig
from occ.core.errors import TranslationError, UpstreamProtocolError
from occ.core.jsonfast import dumps
from occ.core.sse import SSEEvent
from occ.translate.anthropic_events import AnthropicStreamBuilder, replay_message, without_thinking
from occ.translate.tool_ids import restore_tool_names

__all__ = ["BUFFERED_TOOL_INPUT_FAMILIES", "StreamTranslator", "Wire", "streams_tool_input", "wire_for"]


class StreamTranslator(Protocol):
    def feed(self, event: SSEEvent) -> None: ...
    def close(self) -> None: ...
    @property
    def done(self) -> bool: ...


Log = Callable[[str], None]


@attrs.frozen
class Wire:
    protocol: str
    #: (request, raw client body, model, stream, log) -> upstream body bytes
    build: Callable[[dict[str, Any], bytes, ModelConfig, bool, Log], bytes]
    #: (upstream body, *, model, message_id, model_name, input_estimate, thinking) -> Anthropic message
    translate_response: Callable[..., dict[str, Any]]
    #: (builder, model, the request's tool names) -> translator
    stream_translator: Callable[[AnthropicStreamBuilder, ModelConfig, list[str]], StreamTranslator]
    #: (builder, model, the request's tool names) -> a translator that gathers the whole answer and
    #: writes it at the end (a web search the upstream runs itself); None: the wire streams it as usual
    collected_translator: Callable[[AnthropicStreamBuilder, ModelConfig, list[str]], StreamTranslator] | None = None


_modules: dict[str, Any] = {}


def _module(name: str) -> Any:
    """The translator module for ``name``, imported on first use (a failure is retried, and reported,
    on every request that needs it; a success costs one dict lookup from then on)."""
    module = _modules.get(name)
    if module is None:
        try:
            module = _modules[name] = importlib.import_module(f"occ.translate.{name}")
        except ImportError as exc:
            raise TranslationError(f"this build of occ cannot speak the {name} protocol ({exc})") from None
    return module


def _json_builder(name: str) -> Callable[[dict[str, Any], bytes, ModelConfig, bool, Log], bytes]:
    def build(request: dict[str, Any], raw: bytes, model: ModelConfig, stream: bool, log: Log) -> bytes:
        return dumps(_module(name).build_request(request, model, stream=stream, log=log))

    return build


def _translate(name: str, *, routed: bool = False, thinks: bool = False) -> Callable[..., dict[str, Any]]:
    """``routed``: the translator binds upstream reasoning state to the model that made it.
    ``thinks``: it needs to know whether the client asked for thinking (to carry state elsewhere);
    the others have their thinking blocks removed by the caller when it did not."""
    def translate(body: Any, *, model: ModelConfig, thinking: bool = True, **kwargs: Any) -> dict[str, Any]:
        if routed:
            kwargs["route"] = model.label
        if thinks:
            kwargs["thinking"] = thinking
        return _module(name).translate_response(body, **kwargs)

    return translate


#: Model families whose tool-call arguments are held until the call is complete, checked (and
#: repaired where they can be) before anything of the call is written, instead of streamed as they
#: arrive. GLM is known to leak ``<arg_key>`` markup into its arguments (docs/tool-input-streaming.md):
#: held, such a call fails before the response commits, so the next model takes over unseen.
BUFFERED_TOOL_INPUT_FAMILIES = ("glm",)


def streams_tool_input(model: ModelConfig) -> bool:
    """Whether ``model``'s tool arguments stream to the client as they arrive (the rule is per model
    family, by the upstream model id, e.g. ``glm-5.1`` or ``z-ai/glm-4.6``)."""
    family = model.model_id.lower().rsplit("/", 1)[-1]
    return not family.startswith(BUFFERED_TOOL_INPUT_FAMILIES)


def _streamer(name: str, cls: str, *, names: bool = False, routed: bool = False, tool_input: bool = False
              ) -> Callable[[AnthropicStreamBuilder, ModelConfig, list[str]], StreamTranslator]:
    """``tool_input``: the translator can stream tool arguments (``stream_tool_input``)."""
    def make(builder: AnthropicStreamBuilder, model: ModelConfig, tool_names: list[str]) -> StreamTranslator:
        kwargs: dict[str, Any] = {}
        if names:
            kwargs["tool_names"] = tool_names
        if tool_input:
            kwargs["stream_tool_input"] = streams_tool_input(model)
        if routed:
            kwargs["route"] = model.label
        return getattr(_module(name), cls)(builder, **kwargs)

    return make


class _Collected:
    """A stream gathered whole by the wire's collector, translated as a non-streaming answer and
    written through the builder (:func:`replay_message`): the stream and the whole answer give the
    client the same message, blocks in the order the Anthropic API gives them."""

    def __init__(self, builder: AnthropicStreamBuilder, collector: Any, translate: Callable[..., dict[str, Any]],
                 model: ModelConfig, tool_names: list[str]) -> None:
        self._builder = builder
        self._collector = collector
        self._translate = translate
        self._model = model
        self._tool_names = tool_names

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        if self.done:
            return
        body = self._collector.feed(event)
        if body is None:
            return
        builder = self._builder
        message = self._translate(body, model=self._model, message_id=builder.message_id, model_name=builder.model,
                                  input_estimate=builder.input_estimate, thinking=builder.thinking_enabled)
        if not builder.thinking_enabled:
            without_thinking(message)
        restore_tool_names(message, self._tool_names)
        replay_message(builder, message)

    def close(self) -> None:
        if not self.done:
            raise UpstreamProtocolError("upstream stream ended before its answer was complete")


def _collected(name: str, cls: str) -> Callable[[AnthropicStreamBuilder, ModelConfig, list[str]], StreamTranslator]:
    translate = _translate(name, routed=True, thinks=name == "gemini")

    def make(builder: AnthropicStreamBuilder, model: ModelConfig, tool_names: list[str]) -> StreamTranslator:
        return _Collected(builder, getattr(_module(name), cls)(), translate, model, tool_names)

    return make


def _passthrough_build(request: dict[str, Any], raw: bytes, model: ModelConfig, stream: bool,
                       log: Log) -> bytes:
    return _module("anthropic_passthrough").build_body(raw, request, model, log)


_WIRES = {
    "openai": Wire("openai", _json_builder("openai_chat"), _translate("openai_chat", routed=True),
                   _streamer("openai_chat", "ChatStreamTranslator", names=True, routed=True, tool_input=True)),
    "responses": Wire("responses", _json_builder("responses"), _translate("responses", routed=True),
                      _streamer("responses", "ResponsesStreamTranslator", names=True, routed=True,
                                tool_input=True), _collected("responses", "ResponsesCollector")),
    "gemini": Wire("gemini", _json_builder("gemini"), _translate("gemini", routed=True, thinks=True),
                   _streamer("gemini", "GeminiStreamTranslator", names=True, routed=True),
                   _collected("gemini", "GeminiCollector")),
    "anthropic": Wire("anthropic", _passthrough_build, _translate("anthropic_passthrough"),
                      _streamer("anthropic_passthrough", "AnthropicPassthroughTranslator")),
}


def wire_for(protocol: str) -> Wire:
    return _WIRES[protocol]
