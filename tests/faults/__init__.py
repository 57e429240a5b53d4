"""The fault & abuse suite (`make faults`): each case records what the user saw and what was lost."""
