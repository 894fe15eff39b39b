"""File names in the order people read them."""

from labelpilot.store.names import natural_key


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["img_10.png", "IMG_2.png", "img_1.png", "img_02b.png", "a.png", "img_100.png",
             "scan 3 page 12.jpg", "scan 3 page 2.jpg", "x" + "9" * 30 + ".png"]
    assert sorted(names, key=natural_key) == [
        "a.png", "img_1.png", "IMG_2.png", "img_02b.png", "img_10.png", "img_100.png",
        "scan 3 page 2.jpg", "scan 3 page 12.jpg", "x" + "9" * 30 + ".png"]
    assert natural_key("img02") == natural_key("img2")  # the id breaks such ties
    assert len(natural_key("1" * 2000)) == 1000
