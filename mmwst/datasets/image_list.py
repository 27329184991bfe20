"""What the list-file datasets (VTAB-1k, FGVC) share: cheap checks of every listed image
before training, and errors that name the image when one cannot be decoded later.

A zero-byte or corrupt image used to surface as an OpenCV assertion many iterations into
training, without a file name. Listed images are checked when the dataset is built
(they exist and are not empty: one ``stat`` each), and :class:`NamedImageErrors` turns any
failure to load or transform an image into an error naming the file and where it is
listed. Bad images stop the run rather than being skipped: a silently smaller dataset
would change the results.
"""

from __future__ import annotations

import os.path as osp


def check_image_file(img_path: str, where: str) -> None:
    """Raise unless ``img_path`` exists and is not empty; ``where`` says who lists it."""
    if not osp.isfile(img_path):
        raise FileNotFoundError(f'{where}: image {img_path} does not exist')
    if osp.getsize(img_path) == 0:
        raise ValueError(
            f'{where}: image {img_path} is empty (0 bytes), probably a copy cut short; '
            'copy or extract it again, or remove it from the list'
        )


class NamedImageErrors:
    """Mixin for mmengine datasets whose samples carry ``img_path`` and ``source`` (the
    list file and line): a sample that fails to load names its file."""

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except Exception as err:  # re-raised with the file that caused it
            info = self.get_data_info(idx)
            raise ValueError(
                f'{info.get("source", "the dataset")}: image {info.get("img_path")} cannot be '
                f'loaded ({type(err).__name__}: {err}); replace the file or remove it from '
                'the list'
            ) from err
