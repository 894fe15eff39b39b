"""Interactive services behind the smart tools: segmentation sessions with their embedding
caches (`sessions`), click to box (`click_box`), re-recognize one text box
(`recognize`), segment everything (`segment_everything`). May import models, store and
workspace; the server's assist routes and the jobs call them."""
