import pytest

from nodegroup._image_reference import ImageReferenceError, parse_image


@pytest.mark.parametrize(
    ("image", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "", "nginx", "", ""),
        ("nginx:1.25", "", "nginx", "1.25", ""),
        ("library/nginx:1.25", "", "library/nginx", "1.25", ""),
        ("docker.io/library/nginx:1.25", "docker.io", "library/nginx", "1.25", ""),
        ("localhost/app", "localhost", "app", "", ""),
        ("registry.example:5000/team/app:v1", "registry.example:5000", "team/app", "v1", ""),
        ("registry.example:5000/team/app", "registry.example:5000", "team/app", "", ""),
        ("app@sha256:" + "a" * 64, "", "app", "", "sha256:" + "a" * 64),
        ("app:v1@sha256:" + "a" * 64, "", "app", "v1", ""),
    ],
)
def test_parse(image: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = parse_image(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    "image", ["", "Nginx", "nginx:", "nginx:bad tag", "app@sha256:xyz", "-bad/app", "a//b", "bad host!/app"]
)
def test_malformed(image: str) -> None:
    with pytest.raises(ImageReferenceError):
        parse_image(image)


def test_round_trip() -> None:
    for image in ["nginx", "docker.io/library/nginx:1.25", "r.io:1/a/b@sha256:" + "b" * 64]:
        assert str(parse_image(image)) == image
