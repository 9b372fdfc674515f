"""The student (E_v + TPE + E_p + LLM + training-only D_4DP + frozen D_m), the P4D losses
(SFT + LD + ED), the cache-joined dataset and the torchrun trainer. Never imports the teacher.

Filled by issue #6 (student model) and issue #7 (p4d train).
"""
