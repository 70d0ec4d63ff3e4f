"""SNOMED-CT diagnoses (the PhysioNet/CinC Challenge's ``#Dx:`` codes) as PTB-XL labels.

    codes = dx_codes(header_text)                  # (426783006, 164909002)
    status = superclass_status(codes)              # {"NORM": 0, "MI": 0, ..., "CD": 1, ...}
                                                   # or None: unknown (rhythm or ectopy only)

Each code below is written beside the PTB-XL SCP statement it matches and that statement's
diagnostic superclass, with its source: the Challenge's name and abbreviation
(``dx_mapping.csv``, Challenge 2021) on the left, PTB-XL's ``scp_statements.csv``
(``description``, ``diagnostic_class``) on the right. Only statements that PTB-XL itself marks
``diagnostic`` carry a superclass; its form statements (ST depression ``STD_``, T-wave
inversion ``INVT``, low QRS voltage ``LVOLT``, the LVH voltage criterion ``VCLVH``...) and
rhythm statements do not, exactly as in the PTB-XL benchmark's superdiagnostic task.

A record's superclass status:
- it has a code of a diagnostic superclass: positive for each superclass its codes name,
  negative for the others (NORM negative);
- its only code is sinus rhythm (426783006, the Challenge's "normal" class): NORM positive,
  the four others negative;
- otherwise (only rhythm, ectopy or form codes, e.g. atrial fibrillation alone, or sinus
  rhythm with premature beats): unknown, ``None``. PTB-XL would label such an ECG by its
  morphology, which these codes do not describe, so it counts neither as positive nor as
  negative and is left out of a superclass AUC.
"""

from __future__ import annotations

import dataclasses

from ecg_keras.data.ptbxl import SUPERCLASSES

SINUS_RHYTHM = 426783006


@dataclasses.dataclass(frozen=True)
class Code:
    """One SNOMED-CT code: the Challenge's abbreviation, the matching PTB-XL statement (None
    where PTB-XL has none) and its superclass (None: no superclass), and the code's kind."""

    abbreviation: str
    statement: str | None
    superclass: str | None
    kind: str  # "diagnostic", "normal", "rhythm", "ectopy" or "form"


def _d(abbr, statement, superclass):
    return Code(abbr, statement, superclass, "diagnostic")


# fmt: off
CODES: dict[int, Code] = {
    # -- MI: PTB-XL "myocardial infarction" statements (IMI, AMI, ASMI, ALMI, LMI, PMI...) --
    164865005: _d("MI", None, "MI"),            # myocardial infarction -> superclass MI
    57054005: _d("AMI", None, "MI"),            # acute myocardial infarction -> MI
    164867002: _d("OldMI", None, "MI"),         # old myocardial infarction -> MI
    54329005: _d("AnMI", "AMI", "MI"),          # anterior MI = AMI "anterior myocardial infarction"
    # -- STTC: PTB-XL "ST/T change" statements (ISC_, ISCAN, ISCIN, ISCLA, NST_, NDT, LNGQT) --
    164861001: _d("MIs", "ISC_", "STTC"),       # myocardial ischemia = ISC_ "non-specific ischemic"
    413444003: _d("AMIs", "ISC_", "STTC"),      # acute myocardial ischemia = ISC_
    413844008: _d("CMI", "ISC_", "STTC"),       # chronic myocardial ischemia = ISC_
    426434006: _d("AnMIs", "ISCAN", "STTC"),    # anterior ischemia = ISCAN "ischemic in anterior leads"
    425419005: _d("IIs", "ISCIN", "STTC"),      # inferior ischaemia = ISCIN "ischemic in inferior leads"
    425623009: _d("LIs", "ISCLA", "STTC"),      # lateral ischaemia = ISCLA "ischemic in lateral leads"
    428750005: _d("NSSTTA", "NST_", "STTC"),    # nonspecific ST-T abnormality = NST_ "non-specific ST changes"
    55930002: _d("STC", "NST_", "STTC"),        # s t changes = NST_
    164930006: _d("STIAb", "NST_", "STTC"),     # st interval abnormal = NST_
    111975006: _d("LQT", "LNGQT", "STTC"),      # prolonged qt interval = LNGQT "long QT-interval"
    # -- CD: PTB-XL "conduction disturbance" statements --------------------------------------
    270492004: _d("IAVB", "1AVB", "CD"),        # 1st degree av block = 1AVB "first degree AV block"
    195042002: _d("IIAVB", "2AVB", "CD"),       # 2nd degree av block = 2AVB "second degree AV block"
    54016002: _d("MoI", "2AVB", "CD"),          # Mobitz type I (Wenckebach) = 2AVB
    426183003: _d("IIAVBII", "2AVB", "CD"),     # Mobitz type II = 2AVB
    27885002: _d("CHB", "3AVB", "CD"),          # complete heart block = 3AVB "third degree AV block"
    233917008: _d("AVB", None, "CD"),           # av block (degree not given) -> CD (_AVB subclass)
    6374002: _d("BBB", None, "CD"),             # bundle branch block (side not given) -> CD
    164909002: _d("LBBB", "CLBBB", "CD"),       # left bundle branch block = CLBBB
    733534002: _d("CLBBB", "CLBBB", "CD"),      # complete left bundle branch block = CLBBB
    251120003: _d("ILBBB", "ILBBB", "CD"),      # incomplete LBBB = ILBBB
    59118001: _d("RBBB", "CRBBB", "CD"),        # right bundle branch block = CRBBB
    713427006: _d("CRBBB", "CRBBB", "CD"),      # complete right bundle branch block = CRBBB
    713426002: _d("IRBBB", "IRBBB", "CD"),      # incomplete RBBB = IRBBB
    445118002: _d("LAnFB", "LAFB", "CD"),       # left anterior fascicular block = LAFB
    445211001: _d("LPFB", "LPFB", "CD"),        # left posterior fascicular block = LPFB
    698252002: _d("NSIVCB", "IVCD", "CD"),      # nonspecific intraventricular conduction disorder = IVCD
    82226007: _d("DIB", "IVCD", "CD"),          # diffuse intraventricular block = IVCD
    74390002: _d("WPW", "WPW", "CD"),           # wolff parkinson white pattern = WPW
    195060002: _d("VPEx", "WPW", "CD"),         # ventricular pre excitation = WPW
    # -- HYP: PTB-XL "hypertrophy" statements (LVH, RVH, LAO/LAE, RAO/RAE, SEHYP) ------------
    164873001: _d("LVH", "LVH", "HYP"),         # left ventricular hypertrophy = LVH
    89792004: _d("RVH", "RVH", "HYP"),          # right ventricular hypertrophy = RVH
    266249003: _d("VH", None, "HYP"),           # ventricular hypertrophy (side not given) -> HYP
    195126007: _d("AH", None, "HYP"),           # atrial hypertrophy (side not given) -> HYP
    67741000119109: _d("LAE", "LAO/LAE", "HYP"),  # left atrial enlargement = LAO/LAE
    446813000: _d("LAH", "LAO/LAE", "HYP"),     # left atrial hypertrophy = LAO/LAE
    253352002: _d("LAA", "LAO/LAE", "HYP"),     # left atrial abnormality = LAO/LAE
    446358003: _d("RAH", "RAO/RAE", "HYP"),     # right atrial hypertrophy = RAO/RAE
    253339007: _d("RAAb", "RAO/RAE", "HYP"),    # right atrial abnormality = RAO/RAE
    67751000119106: _d("RAHV", "RAO/RAE", "HYP"),  # right atrial high voltage = RAO/RAE
    # -- normal: the Challenge's normal class; PTB-XL's rhythm statement SR ------------------
    SINUS_RHYTHM: Code("NSR", "SR", None, "normal"),  # sinus rhythm = SR "sinus rhythm"
    # -- rhythm: PTB-XL rhythm statements, no superclass -------------------------------------
    164889003: Code("AF", "AFIB", None, "rhythm"),     # atrial fibrillation = AFIB
    164890007: Code("AFL", "AFLT", None, "rhythm"),    # atrial flutter = AFLT
    426177001: Code("SB", "SBRAD", None, "rhythm"),    # sinus bradycardia = SBRAD
    427084000: Code("STach", "STACH", None, "rhythm"),  # sinus tachycardia = STACH
    427393009: Code("SA", "SARRH", None, "rhythm"),    # sinus arrhythmia = SARRH
    426761007: Code("SVT", "SVTAC", None, "rhythm"),   # supraventricular tachycardia = SVTAC
    67198005: Code("PSVT", "PSVT", None, "rhythm"),    # paroxysmal SVT = PSVT
    10370003: Code("PR", "PACE", None, "rhythm"),      # pacing rhythm = PACE
    426627000: Code("Brady", None, None, "rhythm"),    # bradycardia
    713422000: Code("ATach", None, None, "rhythm"),    # atrial tachycardia
    164895002: Code("VTach", None, None, "rhythm"),    # ventricular tachycardia
    425856008: Code("PVT", None, None, "rhythm"),      # paroxysmal ventricular tachycardia
    233897008: Code("AVRT", None, None, "rhythm"),     # atrioventricular reentrant tachycardia
    106068003: Code("ARH", None, None, "rhythm"),      # atrial rhythm
    195080001: Code("AFAFL", "AFIB", None, "rhythm"),  # atrial fibrillation and flutter
    282825002: Code("PAF", "AFIB", None, "rhythm"),    # paroxysmal atrial fibrillation
    426749004: Code("CAF", "AFIB", None, "rhythm"),    # chronic atrial fibrillation
    314208002: Code("RAF", "AFIB", None, "rhythm"),    # rapid atrial fibrillation
    # -- ectopy: PTB-XL form statements PAC, PVC, PRC(S), BIGU, TRIGU; no superclass ----------
    284470004: Code("PAC", "PAC", None, "ectopy"),     # premature atrial contraction = PAC
    63593006: Code("SVPB", "PAC", None, "ectopy"),     # supraventricular premature beats = PAC
    427172004: Code("PVC", "PVC", None, "ectopy"),     # premature ventricular contractions = PVC
    17338001: Code("VPB", "PVC", None, "ectopy"),      # ventricular premature beats = PVC
    164884008: Code("VEB", "PVC", None, "ectopy"),     # ventricular ectopics = PVC
    11157007: Code("VBig", "BIGU", None, "ectopy"),    # ventricular bigeminy = BIGU
    251168009: Code("SVB", "BIGU", None, "ectopy"),    # supraventricular bigeminy = BIGU
    251180001: Code("VTrig", "TRIGU", None, "ectopy"),  # ventricular trigeminy = TRIGU
    13640000: Code("FB", None, None, "ectopy"),        # fusion beats
    # -- form: PTB-XL form statements (not diagnostic), no superclass ------------------------
    429622005: Code("STD", "STD_", None, "form"),      # st depression = STD_ "non-specific ST depression"
    164931005: Code("STE", "STE_", None, "form"),      # st elevation = STE_ "non-specific ST elevation"
    164934002: Code("TAb", "TAB_", None, "form"),      # t wave abnormal = TAB_ "T-wave abnormality"
    59931005: Code("TInv", "INVT", None, "form"),      # t wave inversion = INVT "inverted T-waves"
    251146004: Code("LQRSV", "LVOLT", None, "form"),   # low qrs voltages = LVOLT
    55827005: Code("LVHV", "VCLVH", None, "form"),     # LV high voltage = VCLVH (voltage criterion)
    164947007: Code("LPR", "LPR", None, "form"),       # prolonged pr interval = LPR
    164917005: Code("QAb", "QWAVE", None, "form"),     # qwave abnormal = QWAVE "Q waves present"
    164951009: Code("abQRS", "ABQRS", None, "form"),   # abnormal QRS = ABQRS
    39732003: Code("LAD", None, None, "form"),         # left axis deviation
    47665007: Code("RAD", None, None, "form"),         # right axis deviation
}
# fmt: on


def dx_codes(header_text: str) -> tuple[int, ...]:
    """The SNOMED-CT codes of a Challenge header's ``#Dx:`` comment (none: empty).

    Raises:
      ValueError: a ``#Dx:`` entry that is not an integer code.
    """
    for line in header_text.splitlines():
        key, _, value = line.lstrip("#").strip().partition(":")
        if line.lstrip().startswith("#") and key.strip().lower() == "dx":
            try:
                return tuple(int(c) for c in value.replace(" ", "").split(",") if c)
            except ValueError:
                raise ValueError(
                    f"#Dx: {value.strip()!r} is not a list of SNOMED-CT codes"
                ) from None
    return ()


def superclass_status(codes) -> dict[str, int] | None:
    """{superclass: 0 or 1} over ``ptbxl.SUPERCLASSES``, or None when unknown (see the module
    docstring). Codes this table does not list count as neither diagnostic nor normal."""
    known = [CODES[c] for c in codes if c in CODES]
    positives = {c.superclass for c in known if c.kind == "diagnostic"}
    if positives:
        return {s: int(s in positives) for s in SUPERCLASSES}
    if codes and set(codes) == {SINUS_RHYTHM}:
        return {s: int(s == "NORM") for s in SUPERCLASSES}
    return None


def statements(codes) -> tuple[str, ...]:
    """The PTB-XL SCP statements the codes match, in order, without repeats."""
    return tuple(
        dict.fromkeys(CODES[c].statement for c in codes if c in CODES and CODES[c].statement)
    )
