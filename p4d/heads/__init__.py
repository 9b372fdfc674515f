"""The D_m decoders (3D-conv DPT heads for depth, flow, motion, camray) and ray/camera
geometry. Shared by the teacher (makes P_m) and the student (frozen copies make P̂_m, Eq. 4).

Filled by issue #4 (the L4P teacher and the shared D_m heads).
"""
