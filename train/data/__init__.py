"""Datasets: FER2013 / FERPlus CSVs, image folders, leak-free preparation, augmentation."""

from train.data.faceset import FaceSet, concat, select_classes
from train.data.fer2013 import load_fer2013, load_labelled
from train.data.folders import load_image_folder

__all__ = [
    "FaceSet",
    "concat",
    "load_fer2013",
    "load_image_folder",
    "load_labelled",
    "select_classes",
]
