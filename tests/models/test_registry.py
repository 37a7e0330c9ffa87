import pytest

from edgecnn.errors import UnknownNameError, UsageError
from edgecnn.models import create_model, get_model_info, list_families, list_models, register_model
from edgecnn.models.registry import declare_family, family_names, get_family, plannable_families

EXPECTED_FAMILIES = {
    "resnet",
    "densenet",
    "mobilenet",
    "mobilenet_v2",
    "mobilenet_v3",
    "efficientnet",
    "efficientnet_lite",
    "dcn",
}


def test_every_family_is_registered():
    assert set(list_families()) == EXPECTED_FAMILIES
    for name in (
        "resnet18",
        "resnet152",
        "densenet161",
        "mobilenet_v1",
        "efficientnet_b7",
        "efficientnet_lite4",
        "resnet101_dcnv2",
        "mobilenet_v3_small",
    ):
        assert name in list_models()


def test_list_models_filters_by_glob_family_and_word():
    assert list_models("resnet1*") == ["resnet101", "resnet101_dcn", "resnet101_dcnv2", "resnet152", "resnet18"]
    assert list_models("dcn") == ["resnet101_dcn", "resnet101_dcnv2", "resnet50_dcn", "resnet50_dcnv2"]
    assert list_models(family="efficientnet_lite") == [f"efficientnet_lite{i}" for i in range(5)]


def test_alias_mobilenet_is_v1():
    assert get_model_info("mobilenet").name == "mobilenet_v1"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet50'"):
        create_model("resnet05")


def test_unknown_option_names_what_the_model_takes():
    with pytest.raises(UsageError, match="has no option phi; it takes: width"):
        create_model("resnet18", phi=1.0)


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"width": -1.0}, {"num_classes": 0}, {"resolution": 3}])
def test_bad_option_values_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        create_model("mobilenet_v1", **kwargs)


def test_model_carries_its_input_size_and_scaling():
    model = create_model("mobilenet_v1", width=0.5, resolution=160, num_classes=10, in_chans=1)
    assert model.input_size == (1, 160, 160)
    assert model.scaling == {"width": 0.5, "resolution": 160}
    assert model.model_name == "mobilenet_v1" and model.family == "mobilenet"


def test_resolution_multiplier_rho():
    assert create_model("mobilenet_v1", resolution=0.5).input_size == (3, 112, 112)
    assert create_model("efficientnet_b3").input_size == (3, 300, 300)
    assert create_model("efficientnet", phi=1.0).input_size == (3, 256, 256)


def test_a_model_of_an_undeclared_family_is_refused():
    def vgg11(num_classes: int = 1000, in_chans: int = 3):
        """Not in the zoo."""

    with pytest.raises(ValueError, match="family 'vgg' of 'vgg11' is not declared"):
        register_model("vgg")(vgg11)
    assert "vgg11" not in list_models()


def test_families_are_declared_once_and_only_when_listed():
    assert set(family_names()) == EXPECTED_FAMILIES  # listed without importing a family module
    with pytest.raises(ValueError, match="family 'vgg' is not listed in FAMILY_MODULES"):
        declare_family("vgg")
    with pytest.raises(ValueError, match="family 'resnet' declared twice"):
        declare_family("resnet")


def test_families_declare_planner_grid_and_accuracy():
    assert plannable_families() == ("resnet", "mobilenet", "mobilenet_v2", "efficientnet")
    assert len(get_family("mobilenet").grid) == 35 and len(get_family("efficientnet").grid) == 29 + 8 + 5
    assert get_family("resnet").grid[:2] == (("resnet18", {"resolution": 160}), ("resnet18", {"resolution": 192}))
    expectation = get_family("mobilenet").accuracy("mobilenet_v1", {"width": 0.5, "resolution": 160}, 0.0)
    assert (expectation.top1, expectation.method) == (59.1, "published")
    assert get_family("dcn").grid == () and get_family("dcn").accuracy is None
