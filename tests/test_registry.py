import pytest

from podium.core.errors import PodiumError
from podium.core.registry import Registry


def test_register_get_and_errors() -> None:
    reg: Registry = Registry("widget")

    @reg.register("round")
    def round_widget() -> str:
        return "o"

    assert reg.get("round")() == "o" and "round" in reg and reg.names() == ["round"]
    with pytest.raises(PodiumError, match="Unknown widget 'rond'.*Did you mean 'round'"):
        reg.get("rond")
    with pytest.raises(KeyError):
        reg.register("round")(round_widget)


def test_unregister() -> None:
    reg: Registry = Registry("widget")
    reg.register("square")(str)
    assert reg.unregister("square") is str and "square" not in reg and reg.names() == []
    reg.register("square")(int)  # the name is free again
    with pytest.raises(KeyError):
        reg.unregister("circle")
