"""Secure media: burn and open STD-GEN-SEC File-sets (PS3.10 §8, PS3.11, PS3.12) on ISO images and USB folders."""
