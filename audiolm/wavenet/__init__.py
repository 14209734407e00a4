"""wavenet"""
