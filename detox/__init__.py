"""Lethe's detox side: few-shot and trained rewriters of offensive or inappropriate text."""
