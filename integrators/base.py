"""What every pbdr integrator declares: its name, its capabilities, and the
keyword arguments its ``sample`` takes beyond Mitsuba's.

pbdr's integrators derive from :class:`PbdrIntegrator`, a Mitsuba
``RBIntegrator`` (path replay). The library (``pbdr.scene``)
reads these flags to choose integrators and to warn about derivatives an
integrator leaves out; boundary terms call ``sample`` with the keywords
below when they trace side paths.
"""
from __future__ import annotations

from typing import ClassVar

import drjit as dr
import mitsuba as mi
from mitsuba.ad.integrators.common import RBIntegrator


class PbdrIntegrator(RBIntegrator):
    """The declared contract of a pbdr integrator plugin."""

    #: The name the plugin is registered under (``pbdr.integrators.PLUGINS``).
    plugin_name: ClassVar[str]
    #: Whether derivatives include boundary terms (silhouettes and shadows
    #: that move with the parameters).
    boundary_terms: ClassVar[bool] = False
    #: Whether participating media are rendered; if not, a medium's boundary
    #: is a null surface that counts as a bounce, as in Mitsuba's ``path``.
    renders_media: ClassVar[bool] = False
    #: Whether the shading terminators of smooth-shaded meshes (where the
    #: interpolated normal turns away inside a triangle) are sampled.
    samples_terminators: ClassVar[bool] = False
    #: Whether sampled directions move with the scene (``pbdr_reparam``).
    warps_directions: ClassVar[bool] = False

    def sample(self, mode: dr.ADMode, scene: mi.Scene, sampler: mi.Sampler, ray: mi.Ray3f,
               δL: mi.Spectrum | None, state_in: mi.Spectrum | None, active: mi.Bool,
               first_hit: bool = False, coherent: bool = True,
               first: mi.PreliminaryIntersection3f | None = None,
               medium: mi.MediumPtr | None = None,
               **mitsuba_kwargs) -> tuple[mi.Spectrum, mi.Bool, list, mi.Spectrum]:
        """Mitsuba's ``RBIntegrator.sample`` (primal pass and path replay;
        Mitsuba's own keywords ``depth`` and ``δaovs`` are accepted and
        unused), with:

        - ``first_hit``: the third result is ``[distance to the first
          surface along ray]`` (inf: none), so a caller needs no second ray
          cast; integrators that cannot report it raise ``ValueError``;
        - ``coherent``: whether neighbouring lanes' first rays are alike
          (camera rays are; side rays aimed at edges are not, and Embree's
          packet traversal of unlike rays is slow);
        - ``first``: the rays' first intersections when the caller knows
          them (``ray`` is then not traced; ``boundary.sides.pinned_hits``);
        - ``medium``: the medium the rays start in (None: outside media;
          integrators that do not render media ignore it).
        """
        raise NotImplementedError

    def settings_string(self) -> str:
        """``name=value, ...`` of the integrator's settings (for ``to_string``)."""
        return f"max_depth={self.max_depth}, rr_depth={self.rr_depth}"

    def to_string(self) -> str:
        return f"{type(self).__name__}[{self.settings_string()}]"
