"""Notebook 01 — data for the synthetic cohort (paper 4.1): a curated condition catalog and note text.

Data only; `synthetic` holds the logic. Each condition lists the ways a real note evidences it:
synonyms and lay phrases, abbreviations, medications that imply it, and findings (labs, vitals) with
numeric ranges written `<lo-hi>` (the decimals of `lo` set the printed precision). Weights are
relative prevalence within a condition's kind (chronic: share of patients; acute: share of visits);
for the codes of the paper's Appendix Table 4 they follow that table's test-set counts (in thousands),
so those codes are among the most frequent, roughly in the paper's order; others are estimates. A
code with `requires` is drawn only for patients carrying that prefix, on each visit with probability
weight/100 (capped at 0.5): chemotherapy encounters recur for patients with cancer.
Groups of near-identical codes whose evidence differs only subtly are deliberate: G44.029/G44.329/
G44.229 (chronic cluster vs post-traumatic vs tension headache), C50.911/C50.912/C50.919 (laterality),
E11.9/E11.65 (control), I48.0/I48.20/I48.91 (atrial fibrillation subtype), M17.0/M17.9, E66.9/E66.01.
I48.20 and N18.30 and M54.50 stand in for the paper's I48.2, N18.3 and M54.5, which later ICD-10-CM
releases split into leaf codes.
"""
from __future__ import annotations

from typing import NamedTuple


class Condition(NamedTuple):
    code: str
    weight: float
    chronic: bool
    synonyms: tuple[str, ...]
    abbreviations: tuple[str, ...] = ()
    medications: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    sex: str = ""          # "F" or "M" when the condition is sex-specific
    requires: str = ""     # code prefix the patient must carry (chemotherapy needs a cancer code)
    family: bool = False   # may appear in family history


def _split(s: str) -> tuple[str, ...]:
    return tuple(x for x in s.split("|") if x)


def _c(chronic: bool, code: str, weight: float, syn: str, abbr: str = "", meds: str = "", finds: str = "",
       sex: str = "", requires: str = "", family: bool = False) -> Condition:
    return Condition(code, weight, chronic, _split(syn), _split(abbr), _split(meds), _split(finds), sex, requires, family)


def _chronic(*a, **k) -> Condition:
    return _c(True, *a, **k)


def _acute(*a, **k) -> Condition:
    return _c(False, *a, **k)


CATALOG: tuple[Condition, ...] = (
    # --- chronic: persist across a patient's visits; Appendix Table 4 codes first ---
    _chronic("I10", 391, "hypertension|essential hypertension|high blood pressure|elevated blood pressure on treatment", "HTN", "lisinopril 10 mg daily|amlodipine 5 mg daily|losartan 50 mg daily|hydrochlorothiazide 25 mg daily|lisinopril-hctz 20-12.5 mg", "BP <142-178>/<88-104>|blood pressure <144-170>/<90-100> on repeat", family=True),
    _chronic("E78.5", 291, "hyperlipidemia|high cholesterol|elevated lipids|dyslipidemia", "HLD", "atorvastatin 40 mg qhs|simvastatin 20 mg daily|rosuvastatin 10 mg daily|pravastatin 40 mg daily", "LDL <131-199>|total cholesterol <241-298>", family=True),
    _chronic("K21.9", 133, "gastroesophageal reflux|acid reflux|reflux disease|heartburn, chronic", "GERD", "omeprazole 20 mg daily|pantoprazole 40 mg daily|famotidine 20 mg bid|esomeprazole 40 mg daily"),
    _chronic("E11.9", 132, "type 2 diabetes|diabetes mellitus type 2|type II diabetes without complications|diet-controlled diabetes", "DM2|T2DM|NIDDM", "metformin 500 mg bid|metformin 1000 mg bid|glipizide 5 mg daily|sitagliptin 100 mg daily", "HbA1c <6.5-7.4>%|a1c <6.6-7.3>", family=True),
    _chronic("I25.10", 131, "coronary artery disease|atherosclerotic heart disease|coronary atherosclerosis|ASCVD", "CAD|ASHD", "aspirin 81 mg daily|clopidogrel 75 mg daily|isosorbide mononitrate 30 mg daily", "s/p PCI to LAD in <2008-2018>|cath with <60-90>% stenosis of RCA", family=True),
    _chronic("E55.9", 114, "vitamin d deficiency|low vitamin d|hypovitaminosis d", "", "vitamin d3 2000 units daily|ergocalciferol 50,000 units weekly|cholecalciferol 1000 iu daily", "25-OH vitamin D <8-19> ng/mL|vit d level <9-19>"),
    _chronic("E03.9", 91, "hypothyroidism|underactive thyroid|hypothyroid", "", "levothyroxine 50 mcg daily|levothyroxine 88 mcg daily|synthroid 100 mcg daily|levothyroxine 112 mcg", "TSH <5.6-12.4>|tsh elevated at <6.1-11.0>"),
    _chronic("E66.9", 80, "obesity|obese|elevated BMI, obesity", "", "", "BMI <30.1-39.4>|bmi <30.5-38.9> kg/m2"),
    _chronic("E78.00", 73, "pure hypercholesterolemia|hypercholesterolemia|elevated cholesterol", "", "atorvastatin 20 mg daily|ezetimibe 10 mg daily", "LDL <160-230>"),
    _chronic("F41.9", 72, "anxiety|anxiety disorder|anxious mood, chronic", "", "hydroxyzine 25 mg prn anxiety|buspirone 10 mg bid", "GAD-7 score <8-16>"),
    _chronic("F32.9", 68, "depression|major depressive disorder, single episode|depressive disorder|depressed mood", "MDD", "sertraline 50 mg daily|escitalopram 10 mg daily|bupropion xl 150 mg daily|fluoxetine 20 mg daily", "PHQ-9 score <10-19>"),
    _chronic("I48.91", 61, "atrial fibrillation|afib|irregularly irregular rhythm", "AF|AFib", "apixaban 5 mg bid|rivaroxaban 20 mg daily|diltiazem 120 mg daily|metoprolol tartrate 25 mg bid", "ekg: atrial fibrillation, rate <88-130>"),
    _chronic("G89.29", 50, "chronic pain|other chronic pain|chronic back pain, on pain contract", "", "gabapentin 300 mg tid|oxycodone 5 mg q6h prn|tramadol 50 mg q8h prn", "pain score <6-9>/10, chronic"),
    _chronic("J44.9", 48, "chronic obstructive pulmonary disease|emphysema|chronic obstructive lung disease", "COPD", "tiotropium 18 mcg inhaled daily|fluticasone-salmeterol 250/50 bid|umeclidinium-vilanterol daily", "FEV1 <38-68>% predicted|FEV1/FVC <0.48-0.68>"),
    _chronic("M19.90", 48, "osteoarthritis|degenerative joint disease|arthritis, degenerative", "OA|DJD", "meloxicam 15 mg daily|diclofenac 1% gel qid"),
    _chronic("M81.0", 47, "osteoporosis|age-related osteoporosis|low bone density, osteoporotic", "", "alendronate 70 mg weekly|denosumab 60 mg every 6 months|calcium with vitamin d bid", "DEXA T-score -<2.5-3.6> at femoral neck"),
    _chronic("I48.0", 40, "paroxysmal atrial fibrillation|intermittent afib|paroxysmal afib", "PAF", "flecainide 50 mg bid|apixaban 5 mg bid", "holter with brief runs of afib, longest <2-9> hours"),
    _chronic("G47.33", 39, "obstructive sleep apnea|sleep apnea|snoring with witnessed apneas", "OSA", "CPAP nightly|cpap at <8-14> cm h2o", "AHI <16-48> on sleep study"),
    _chronic("N40.0", 35, "benign prostatic hyperplasia|enlarged prostate|prostatic hypertrophy", "BPH", "tamsulosin 0.4 mg qhs|finasteride 5 mg daily", "prostate <35-70> g on exam", sex="M"),
    _chronic("J45.909", 34, "asthma|reactive airway disease|asthma, uncomplicated", "", "albuterol inhaler prn|montelukast 10 mg qhs|budesonide-formoterol 160/4.5 bid", "peak flow <280-420>"),
    _chronic("E66.01", 30, "morbid obesity|severe obesity|class 3 obesity", "", "", "BMI <40.1-52.0>|weight <280-380> lbs, bmi <40.5-49.9>"),
    _chronic("N18.30", 29, "chronic kidney disease stage 3|ckd stage 3|moderate chronic kidney disease", "CKD3|CKD III", "", "eGFR <31-58>|creatinine <1.4-2.1>, egfr <35-55>"),
    _chronic("I48.20", 27, "chronic atrial fibrillation|longstanding atrial fibrillation|afib, chronic, rate controlled", "", "warfarin <3-7> mg daily|apixaban 5 mg bid", "INR <2.0-3.0>"),
    _chronic("G62.9", 26, "polyneuropathy|peripheral neuropathy|neuropathy of both feet", "", "gabapentin 300 mg qhs|duloxetine 60 mg daily", "decreased monofilament sensation bilateral feet"),
    _chronic("F41.1", 26, "generalized anxiety disorder|generalized anxiety|chronic worry, gad", "GAD", "escitalopram 10 mg daily|buspirone 15 mg bid", "GAD-7 score <12-21>"),
    _chronic("I73.9", 25, "peripheral vascular disease|peripheral arterial disease|claudication", "PVD|PAD", "cilostazol 100 mg bid", "ABI <0.50-0.89>"),
    _chronic("Z95.0", 25, "cardiac pacemaker in place|presence of pacemaker|s/p pacemaker placement", "PPM", "", "paced rhythm on ekg"),
    _chronic("E78.2", 24, "mixed hyperlipidemia|combined hyperlipidemia|elevated cholesterol and triglycerides", "", "fenofibrate 145 mg daily|atorvastatin 40 mg daily", "triglycerides <210-480>, ldl <140-190>"),
    _chronic("M17.9", 23, "osteoarthritis of knee|knee arthritis|knee oa", "", "", "xr knee: joint space narrowing"),
    _chronic("E11.65", 23, "type 2 diabetes with hyperglycemia|uncontrolled type 2 diabetes|poorly controlled diabetes", "DM2 uncontrolled", "insulin glargine <18-40> units qhs|metformin 1000 mg bid|semaglutide 1 mg weekly", "HbA1c <8.1-11.9>%|fingerstick glucose <250-380>"),
    _chronic("C50.911", 23, "malignant neoplasm of right breast|right breast cancer|carcinoma of the right breast|s/p right lumpectomy for breast cancer", "", "anastrozole 1 mg daily|tamoxifen 20 mg daily|letrozole 2.5 mg daily", "right breast mass, biopsy: invasive ductal carcinoma", sex="F", family=True),
    _chronic("C50.919", 23, "breast cancer|breast carcinoma|malignant neoplasm of breast|history of breast ca, on therapy", "", "anastrozole 1 mg daily|tamoxifen 20 mg daily|letrozole 2.5 mg daily", "ER/PR positive, HER2 negative ductal carcinoma", sex="F", family=True),
    _chronic("C50.912", 22, "malignant neoplasm of left breast|left breast cancer|carcinoma of the left breast|s/p left lumpectomy for breast cancer", "", "anastrozole 1 mg daily|tamoxifen 20 mg daily|letrozole 2.5 mg daily", "left breast mass, biopsy: invasive ductal carcinoma", sex="F", family=True),
    _chronic("I34.0", 22, "mitral regurgitation|mitral valve insufficiency|mitral insufficiency", "MR", "", "echo: moderate mitral regurgitation"),
    _chronic("F17.200", 21, "nicotine dependence|tobacco use|current smoker|smokes cigarettes", "", "nicotine patch 21 mg daily|varenicline 1 mg bid", "smokes <1-2> ppd|<10-40> pack-year history"),
    _chronic("M17.0", 20, "bilateral primary osteoarthritis of knee|bilateral knee osteoarthritis|osteoarthritis of both knees", "", "", "xr bilateral knees: tricompartmental degenerative change"),
    _chronic("J45.20", 19, "mild intermittent asthma|intermittent asthma|asthma, mild intermittent", "", "albuterol inhaler prn", "symptoms <1-2> days per week"),
    _chronic("M06.9", 18, "rheumatoid arthritis|inflammatory arthritis, rheumatoid", "RA", "methotrexate 15 mg weekly|hydroxychloroquine 200 mg bid|adalimumab 40 mg every 2 weeks", "anti-CCP <60-250>"),
    _chronic("I35.0", 18, "aortic stenosis|aortic valve stenosis|calcific aortic stenosis", "AS", "", "aortic valve area <0.8-1.4> cm2"),
    _chronic("I50.9", 15, "congestive heart failure|heart failure|chf exacerbations in past", "CHF", "furosemide 40 mg daily|carvedilol 12.5 mg bid|sacubitril-valsartan 49/51 mg bid", "BNP <410-1800>|EF <25-40>%", family=True),
    _chronic("G43.909", 12, "migraine|migraine headaches|migraines without aura", "", "sumatriptan 50 mg prn|topiramate 25 mg bid|rizatriptan 10 mg prn"),
    _chronic("F33.1", 10, "major depressive disorder, recurrent, moderate|recurrent depression|recurrent major depression", "", "sertraline 100 mg daily|venlafaxine 75 mg daily"),
    _chronic("I50.32", 8, "chronic diastolic heart failure|heart failure with preserved ejection fraction", "HFpEF", "furosemide 20 mg daily|spironolactone 25 mg daily", "EF <55-65>% with grade 2 diastolic dysfunction"),
    _chronic("E11.22", 8, "type 2 diabetes with diabetic chronic kidney disease|diabetic nephropathy", "", "empagliflozin 10 mg daily|insulin glargine 20 units qhs", "urine albumin/creatinine <40-300>"),
    _chronic("K76.0", 8, "fatty liver|nonalcoholic fatty liver disease|hepatic steatosis", "NAFLD", "", "us: diffusely echogenic liver"),
    _chronic("C61", 8, "prostate cancer|adenocarcinoma of prostate|prostate ca", "", "leuprolide every 3 months|bicalutamide 50 mg daily", "PSA <4.5-18.0>, gleason 3+4", sex="M", family=True),
    _chronic("E11.40", 7, "type 2 diabetes with neuropathy|diabetic neuropathy", "", "pregabalin 75 mg bid", "absent ankle reflexes, stocking distribution sensory loss"),
    _chronic("I70.0", 6, "aortic atherosclerosis|atherosclerosis of aorta", "", "", "ct: calcified atherosclerotic plaque in the aorta"),
    _chronic("M10.9", 6, "gout|gouty arthritis", "", "allopurinol 300 mg daily|colchicine 0.6 mg prn flares", "uric acid <8.1-10.5>"),
    _chronic("K58.9", 6, "irritable bowel syndrome|ibs", "IBS", "dicyclomine 20 mg prn"),
    _chronic("E04.1", 5, "thyroid nodule|nodule of thyroid", "", "", "us thyroid: <1.1-2.4> cm nodule"),
    _chronic("H40.9", 5, "glaucoma", "", "latanoprost 0.005% eye drops qhs|timolol eye drops"),
    _chronic("E10.9", 5, "type 1 diabetes|insulin-dependent diabetes|juvenile onset diabetes", "T1DM|DM1", "insulin pump|insulin lispro sliding scale", "HbA1c <6.8-8.2>%"),
    _chronic("G40.909", 4, "epilepsy|seizure disorder", "", "levetiracetam 500 mg bid|lamotrigine 100 mg bid"),
    _chronic("F03.90", 4, "dementia|memory loss, dementia|cognitive decline, dementia", "", "donepezil 10 mg qhs|memantine 10 mg bid", "MoCA <14-22>/30", family=True),
    _chronic("F31.9", 4, "bipolar disorder|bipolar affective disorder", "", "lithium 300 mg bid|quetiapine 100 mg qhs", "lithium level <0.6-1.1>"),
    _chronic("F10.20", 4, "alcohol dependence|alcohol use disorder", "AUD", "naltrexone 50 mg daily", "drinks <6-12> beers daily"),
    _chronic("N18.4", 4, "chronic kidney disease stage 4|ckd stage 4|severe chronic kidney disease", "CKD4", "", "eGFR <16-29>"),
    _chronic("F90.9", 4, "attention deficit hyperactivity disorder|attention deficit disorder", "ADHD", "methylphenidate er 36 mg daily"),
    _chronic("C34.90", 4, "lung cancer|non-small cell lung cancer|carcinoma of lung", "NSCLC", "osimertinib 80 mg daily", "ct chest: spiculated mass", family=True),
    _chronic("L40.0", 4, "psoriasis|plaque psoriasis", "", "clobetasol 0.05% ointment|ustekinumab every 12 weeks"),
    _chronic("M48.061", 4, "lumbar spinal stenosis|spinal stenosis, lumbar", "", "", "mri l-spine: moderate central canal stenosis at l4-5"),
    _chronic("M47.816", 4, "lumbar spondylosis|degenerative disc disease of lumbar spine", "DDD", "", "xr: multilevel degenerative change l-spine"),
    _chronic("F43.10", 3, "post-traumatic stress disorder|ptsd", "PTSD", "prazosin 1 mg qhs"),
    _chronic("I27.20", 3, "pulmonary hypertension", "PH", "sildenafil 20 mg tid", "RVSP <45-70> on echo"),
    _chronic("I42.9", 3, "cardiomyopathy", "", "carvedilol 6.25 mg bid", "EF <30-40>%"),
    _chronic("E21.3", 3, "hyperparathyroidism", "", "cinacalcet 30 mg daily", "PTH <95-180>, calcium <10.6-11.4>"),
    _chronic("H90.3", 3, "bilateral sensorineural hearing loss|hearing loss, both ears", "", "hearing aids", "audiogram: bilateral sensorineural loss"),
    _chronic("N18.6", 3, "end stage renal disease|esrd on hemodialysis", "ESRD", "sevelamer 800 mg tid with meals", "dialysis mwf via left av fistula"),
    _chronic("G30.9", 3, "alzheimer disease|alzheimer's dementia", "", "donepezil 10 mg qhs", family=True),
    _chronic("C18.9", 3, "colon cancer|malignant neoplasm of colon|adenocarcinoma of colon", "", "capecitabine", "cea <6-40>", family=True),
    _chronic("Z99.2", 3, "dependence on renal dialysis|on hemodialysis", "HD", "", "tunneled dialysis catheter in place"),
    _chronic("K50.90", 3, "crohn disease|crohn's disease", "", "infliximab every 8 weeks|budesonide 9 mg daily"),
    _chronic("K51.90", 3, "ulcerative colitis", "UC", "mesalamine 2.4 g daily"),
    _chronic("I65.29", 3, "carotid artery stenosis|carotid stenosis", "", "", "carotid duplex: <50-69>% stenosis"),
    _chronic("G44.229", 2, "chronic tension-type headache|chronic tension headaches", "", "amitriptyline 10 mg qhs", "daily bilateral band-like headaches"),
    _chronic("G44.029", 2, "chronic cluster headache|cluster headaches, chronic", "", "verapamil 80 mg tid|high-flow oxygen for attacks", "daily unilateral orbital headaches"),
    _chronic("G44.329", 2, "chronic post-traumatic headache|post-concussive headaches, chronic|headaches since head injury", "", "amitriptyline 25 mg qhs", "daily headaches since head injury"),
    _chronic("Z21", 2, "hiv positive|asymptomatic hiv infection", "HIV+", "bictegravir-emtricitabine-tenofovir daily", "viral load undetectable, cd4 <450-900>"),
    _chronic("C90.00", 2, "multiple myeloma", "MM", "lenalidomide 10 mg daily", "m-spike <0.4-2.1> g/dl"),
    _chronic("C73", 2, "thyroid cancer|papillary thyroid carcinoma", "", "levothyroxine 125 mcg daily", "s/p total thyroidectomy, thyroglobulin undetectable"),
    # --- acute / per-visit problems and encounters ---
    _acute("Z00.00", 43, "annual physical|routine adult health maintenance exam|annual wellness visit|general medical examination, no abnormal findings", "AWV", "", "preventive visit, all screening up to date"),
    _acute("Z51.11", 42, "chemotherapy|here for chemotherapy infusion|cycle <2-6> of chemotherapy", "", "paclitaxel 80 mg/m2 weekly|doxorubicin-cyclophosphamide|carboplatin auc 5", requires="C"),
    _acute("Z23", 23, "flu shot given|influenza vaccine administered|pneumococcal vaccine given|covid booster administered|tdap given today", "", "", "vaccine lot # <10000-99999> given in left deltoid"),
    _acute("M54.50", 21, "low back pain|lumbago|lower back pain", "LBP", "cyclobenzaprine 10 mg qhs prn|naproxen 500 mg bid", "paraspinal tenderness l4-s1, straight leg raise negative"),
    _acute("Z51.12", 21, "immunotherapy|here for pembrolizumab infusion|antineoplastic immunotherapy", "", "pembrolizumab 200 mg iv every 3 weeks|nivolumab 240 mg iv", requires="C"),
    _acute("R53.83", 20, "fatigue|tiredness|feeling tired all the time|low energy", "", "", "reports fatigue for <2-8> weeks"),
    _acute("J06.9", 20, "upper respiratory infection|viral uri|cold symptoms", "URI", "benzonatate 100 mg tid prn", "rhinorrhea, mild pharyngeal erythema"),
    _acute("N39.0", 15, "urinary tract infection|cystitis|uti symptoms", "UTI", "nitrofurantoin 100 mg bid x 5 days|cephalexin 500 mg bid x 7 days", "UA: positive nitrites and leukocyte esterase"),
    _acute("R07.9", 14, "chest pain|chest discomfort", "CP", "", "troponin negative x2"),
    _acute("R05.9", 12, "cough|persistent cough", "", "dextromethorphan prn", "cough for <2-6> weeks"),
    _acute("R10.9", 10, "abdominal pain|belly pain", "", "", "abdomen tender to palpation"),
    _acute("R51.9", 10, "headache|head pain", "HA", "acetaminophen 650 mg prn", "headache for <2-5> days"),
    _acute("R73.03", 10, "prediabetes|borderline diabetes", "", "", "HbA1c <5.7-6.4>%"),
    _acute("Z87.891", 10, "former smoker|history of tobacco use|quit smoking in <1990-2016>", "", "", ""),
    _acute("R42", 9, "dizziness|lightheadedness|vertigo-like symptoms", "", "meclizine 25 mg prn", "orthostatic vitals negative"),
    _acute("J01.90", 8, "acute sinusitis|sinus infection", "", "amoxicillin-clavulanate 875 mg bid", "maxillary sinus tenderness"),
    _acute("J30.9", 8, "allergic rhinitis|seasonal allergies|hay fever", "", "cetirizine 10 mg daily|fluticasone nasal spray", ""),
    _acute("Z12.31", 8, "screening mammogram|encounter for screening mammogram", "", "", "bilateral screening mammogram ordered", sex="F"),
    _acute("M25.551", 8, "right hip pain|pain in right hip|r hip pain, s/p labral repair", "", "", "tenderness over right greater trochanter"),
    _acute("M25.561", 8, "right knee pain|pain in right knee", "", "", "right knee effusion, tender medial joint line"),
    _acute("M54.2", 7, "neck pain|cervicalgia", "", "", "limited cervical rotation"),
    _acute("D64.9", 7, "anemia", "", "", "hgb <8.9-11.2>"),
    _acute("G47.00", 7, "insomnia|trouble sleeping", "", "melatonin 3 mg qhs|trazodone 50 mg qhs", ""),
    _acute("K59.00", 7, "constipation", "", "polyethylene glycol 17 g daily|senna 8.6 mg qhs", ""),
    _acute("R07.89", 6, "atypical chest pain|chest wall pain|other chest pain", "", "", "reproducible chest wall tenderness"),
    _acute("R06.02", 6, "shortness of breath|dyspnea", "SOB", "", "spo2 <91-95>% on room air"),
    _acute("J18.9", 6, "pneumonia|community acquired pneumonia", "CAP", "azithromycin 500 mg day 1 then 250 mg|levofloxacin 750 mg daily", "cxr: right lower lobe infiltrate"),
    _acute("J20.9", 6, "acute bronchitis|chest cold", "", "", ""),
    _acute("J02.9", 6, "pharyngitis|sore throat", "", "", "rapid strep negative"),
    _acute("M25.562", 6, "left knee pain|pain in left knee", "", "", ""),
    _acute("M25.511", 6, "right shoulder pain|pain in right shoulder", "", "", "positive hawkins test right"),
    _acute("Z12.11", 6, "screening colonoscopy|colon cancer screening", "", "", ""),
    _acute("U07.1", 5, "covid-19|covid infection|sars-cov-2 infection", "COVID", "paxlovid", "covid pcr positive"),
    _acute("R11.2", 5, "nausea with vomiting|nausea and vomiting", "N/V", "ondansetron 4 mg prn", ""),
    _acute("R60.0", 5, "leg swelling|localized edema|ankle edema", "", "", "<1-2>+ pitting edema bilateral ankles"),
    _acute("D50.9", 5, "iron deficiency anemia|iron deficiency", "IDA", "ferrous sulfate 325 mg daily", "ferritin <4-14>"),
    _acute("R55", 5, "syncope|passed out|fainting episode", "", "", ""),
    _acute("M25.552", 5, "left hip pain|pain in left hip", "", "", ""),
    _acute("Z01.818", 5, "preoperative examination|pre-op clearance", "", "", "cleared for surgery from medical standpoint"),
    _acute("R00.2", 4, "palpitations", "", "", "holter ordered for palpitations"),
    _acute("Z86.73", 4, "history of tia|history of stroke without residual deficits", "", "", ""),
    _acute("L03.115", 4, "cellulitis of right lower leg|right leg cellulitis", "", "cephalexin 500 mg qid", "erythema and warmth of right shin"),
    _acute("L03.116", 4, "cellulitis of left lower leg|left leg cellulitis", "", "cephalexin 500 mg qid", "erythema and warmth of left shin"),
    _acute("E87.6", 4, "hypokalemia|low potassium", "", "potassium chloride 20 meq daily", "K <2.9-3.4>"),
    _acute("R19.7", 4, "diarrhea", "", "loperamide prn", ""),
    _acute("R50.9", 4, "fever", "", "", "temp <100.5-102.8> f"),
    _acute("Z68.41", 4, "body mass index 40.0-44.9, adult", "", "", "BMI <40.0-44.9>", requires="E66.01"),
    _acute("L30.9", 4, "dermatitis|eczematous rash", "", "triamcinolone 0.1% cream bid", ""),
    _acute("Z09", 4, "follow-up exam after completed treatment|post-treatment follow up", "", "", ""),
    _acute("R21", 4, "rash|skin eruption", "", "", "maculopapular rash on trunk"),
    _acute("N17.9", 3, "acute kidney injury", "AKI", "", "creatinine up to <1.8-3.2> from baseline"),
    _acute("S72.001A", 3, "right hip fracture|fracture of right femoral neck|right femoral neck fracture after fall", "", "", "xr: displaced right femoral neck fracture"),
    _acute("Z47.89", 3, "orthopedic aftercare|s/p right hip labral repair, aftercare|s/p labral repair", "", "", "surgical protocol, currently phase <1-3>"),
    _acute("Z96.641", 3, "status post right total hip arthroplasty|right hip replacement", "THA", "", ""),
    _acute("S93.401A", 3, "right ankle sprain|sprained right ankle", "", "", "swelling over right atfl"),
    _acute("H66.90", 3, "otitis media|ear infection", "", "amoxicillin 500 mg tid", "bulging tympanic membrane"),
    _acute("K29.70", 3, "gastritis", "", "", ""),
    _acute("N20.0", 3, "nephrolithiasis|kidney stone", "", "tamsulosin 0.4 mg for stone passage", "ct: <3-9> mm obstructing stone"),
    _acute("E86.0", 3, "dehydration", "", "iv fluids", ""),
    _acute("A09", 3, "infectious gastroenteritis|stomach bug with diarrhea", "", "", ""),
    _acute("R63.4", 3, "weight loss|unintentional weight loss", "", "", "lost <8-25> lbs over <2-6> months"),
    _acute("Z71.3", 3, "dietary counseling|nutrition counseling", "", "", ""),
    _acute("R31.9", 3, "hematuria|blood in urine", "", "", "UA with <10-50> rbc/hpf"),
    _acute("S72.002A", 2, "left hip fracture|fracture of left femoral neck", "", "", "xr: left femoral neck fracture"),
    _acute("I21.4", 2, "nstemi|non-st elevation myocardial infarction", "NSTEMI", "heparin drip", "troponin <0.08-2.40>"),
    _acute("I63.9", 2, "acute ischemic stroke|cerebral infarction", "CVA", "", "mri brain: acute infarct"),
    _acute("A41.9", 2, "sepsis", "", "vancomycin and piperacillin-tazobactam", "lactate <2.1-4.5>"),
    _acute("I26.99", 2, "pulmonary embolism", "PE", "apixaban 10 mg bid x 7 days", "cta chest: segmental pe"),
    _acute("I82.401", 2, "right leg deep vein thrombosis|dvt of right lower extremity", "DVT", "rivaroxaban 15 mg bid", "doppler: right popliteal dvt"),
    _acute("E87.1", 2, "hyponatremia", "", "fluid restriction 1.5 l", "na <124-133>"),
    _acute("K80.20", 2, "cholelithiasis|gallstones", "", "", "us: gallstones without wall thickening"),
    _acute("H10.9", 2, "conjunctivitis|pink eye", "", "erythromycin ophthalmic ointment", ""),
)

# --- note types: (name, share, median words, lognormal sigma, P(active chronic coded),
#     mean acute codes, encounter types, author roles, layout) --------------------------------------
# Layout entries are (heading, slot); synthetic._render_note fills the slots: evidence slots (cc, hpi,
# pmh, meds, labs, late), `lead:T` (an opening sentence from TEMPLATES[T]), `neg` (negations), `fhx`,
# `b:P` (optional boilerplate from BOILERPLATE[P]) and `f:P+Q` (filler from FILLER[P], mixed with Q)
# that tops the note up to its length. Shares follow paper 4.1 (progress notes > 50%, telephone 10%,
# patient instructions 5%); the rest are estimates.
def _full(fill: str, late: str = "ASSESSMENT AND PLAN") -> tuple:
    return (("CHIEF COMPLAINT", "cc"), ("HISTORY OF PRESENT ILLNESS", "hpi"), ("PAST MEDICAL HISTORY", "pmh"),
            ("MEDICATIONS", "meds"), ("ALLERGIES", "b:allergy"), ("FAMILY HISTORY", "fhx"), ("SOCIAL HISTORY", "b:social"),
            ("REVIEW OF SYSTEMS", "b:ros"), ("VITALS", "b:vitals"), ("PHYSICAL EXAM", "b:exam"), ("", f"f:{fill}"),
            ("LABS", "labs"), (late, "late"))


def _brief(lead: str, fill: str, late: str = "PLAN") -> tuple:
    return (("", f"lead:{lead}"), ("", "neg"), ("", f"f:{fill}"), (late, "late"))


_REPORT = (("INDICATION", "cc"), ("TECHNIQUE", "b:technique"), ("FINDINGS", "f:radiology+data"), ("IMPRESSION", "late"))
_THERAPY = (("TREATMENT DIAGNOSIS", "cc"), ("", "b:insurance"), ("SUBJECTIVE", "hpi"), ("OBJECTIVE", "f:therapy"),
            ("ASSESSMENT / PLAN", "late"))
_INSTRUCT = (("YOU WERE SEEN TODAY FOR", "cc"), ("YOUR MEDICATIONS", "meds"), ("", "f:instructions"), ("FOLLOW UP", "late"))
_PROC = (("PREOPERATIVE DIAGNOSIS", "cc"), ("", "b:procedure"), ("", "f:procedure+data"), ("POSTOPERATIVE DIAGNOSIS", "late"))
_CLINIC = ("office visit", "follow-up visit", "new patient visit")
_MD = ("attending physician", "nurse practitioner", "physician assistant", "resident physician")

NOTE_TYPES: tuple[tuple, ...] = (
    ("progress note", 0.500, 150, 0.90, 0.62, 1.5, _CLINIC, _MD, _full("clinic+data")),
    ("telephone encounter", 0.100, 42, 0.55, 0.22, 1.0, ("telephone",), ("registered nurse", "medical assistant", "attending physician"), _brief("call", "phone")),
    ("patient instructions", 0.050, 160, 0.55, 0.55, 1.3, _CLINIC, _MD, _INSTRUCT),
    ("history and physical", 0.040, 650, 0.55, 0.85, 2.0, ("hospital encounter", "admission"), _MD, _full("hospital+data")),
    ("consult note", 0.040, 420, 0.55, 0.75, 1.6, ("hospital encounter", "office visit"), ("consulting physician", "fellow"), _full("hospital+clinic+data", "IMPRESSION AND RECOMMENDATIONS")),
    ("radiology report", 0.035, 115, 0.50, 0.10, 1.2, ("imaging",), ("radiologist",), _REPORT),
    ("ed provider note", 0.030, 350, 0.55, 0.55, 2.1, ("emergency",), ("emergency physician", "physician assistant"), _full("hospital+data", "ED COURSE AND DISPOSITION")),
    ("physical therapy progress note", 0.030, 270, 0.50, 0.15, 1.3, ("therapy visit",), ("physical therapist",), _THERAPY),
    ("nursing note", 0.030, 85, 0.70, 0.35, 1.1, ("hospital encounter", "infusion visit"), ("registered nurse",), _brief("nursing", "nursing", "")),
    ("discharge summary", 0.025, 750, 0.55, 0.85, 2.2, ("hospital encounter",), _MD, _full("hospital+data", "DISCHARGE DIAGNOSES AND PLAN")),
    ("letter", 0.015, 150, 0.50, 0.40, 0.9, ("orders only",), _MD, _brief("letter", "clinic", "RECOMMENDATIONS")),
    ("procedure note", 0.013, 240, 0.50, 0.30, 1.2, ("procedure visit",), ("attending physician", "fellow"), _PROC),
    ("operative note", 0.012, 420, 0.50, 0.30, 1.3, ("surgery",), ("surgeon",), _PROC),
    ("pathology report", 0.010, 160, 0.50, 0.20, 1.0, ("lab",), ("pathologist",), _REPORT),
    ("echocardiography report", 0.010, 190, 0.40, 0.35, 0.8, ("imaging",), ("cardiologist",), _REPORT),
    ("care coordination note", 0.010, 60, 0.60, 0.25, 0.8, ("orders only",), ("care coordinator", "social worker"), _brief("counsel", "counsel")),
    ("behavioral health note", 0.005, 420, 0.50, 0.55, 1.0, ("office visit",), ("psychiatrist", "psychologist"), _full("counsel+clinic")),
    ("nutrition note", 0.005, 200, 0.50, 0.45, 0.8, ("office visit",), ("dietitian",), _brief("counsel", "counsel")),
    ("social work note", 0.005, 180, 0.50, 0.25, 0.6, ("hospital encounter",), ("social worker",), _brief("counsel", "counsel")),
    ("anesthesia preprocedure evaluation", 0.005, 350, 0.45, 0.70, 0.9, ("surgery",), ("anesthesiologist",), _full("procedure+data")),
    # Paper 4.1 excludes these three types; the cohort step drops them by these exact names.
    ("erroneous", 0.010, 120, 0.80, 0.50, 1.1, _CLINIC, _MD, _brief("erroneous", "clinic")),
    ("student", 0.010, 300, 0.70, 0.60, 1.2, _CLINIC, ("medical student",), _full("clinic+data")),
    ("miscellaneous", 0.010, 60, 0.80, 0.30, 0.8, ("orders only",), ("medical assistant",), _brief("counsel", "phone")),
)

# --- text pools (numeric ranges `<lo-hi>` are drawn per use; `@...@` are de-identification tags) ---
BOILERPLATE: dict[str, tuple[str, ...]] = {
    "allergy": ("NKDA", "no known drug allergies", "penicillin (rash)", "sulfa drugs (hives)", "codeine - nausea",
                "lisinopril (angioedema)", "shellfish, iodinated contrast (itching)", "latex", "patient has no known allergies."),
    "social": ("lives with spouse, retired @occupation@. no illicit drug use. drinks <1-3> glasses of wine per week.",
               "lives alone in an apartment, independent with adls. denies alcohol or drug use.",
               "works as @occupation@. married, <1-4> children. exercises <1-4> times per week.",
               "never smoker. occasional alcohol. no recreational drugs. lives with daughter.",
               "former smoker, quit many years ago. social drinker. walks daily.",
               "lives in a walk-up, <2-5> flights of stairs. uses a cane outdoors. no alcohol."),
    "ros": ("gen: no weight loss or gain, good general state of health, no weakness, no fatigue, no fever, "
            "good exercise tolerance, able to do usual activities. heent: head: no headache, no dizziness, no lightheadness "
            "eyes: normal vision, no redness, no blind spots, no floaters. ears: no earaches, no fullness, normal hearing, no "
            "tinnitus. nose and sinuses: no colds, no stuffiness, no discharge, no hay fever, no nosebleeds, no sinus trouble. "
            "mouth and pharynx: no cavities, no bleeding gums, no sore throat, no hoarseness. neck: no lumps, no goiter, no "
            "neck stiffness or pain. ln: no adenopathy cardiac: no chest pain or discomfort no syncope, no dyspnea on "
            "exertion, no orthopnea, no pnd, no edema, no cyanosis, no heart murmur, no palpitations resp: no pleuritic pain, "
            "no sob, no wheezing, no stridor, no cough, no hemoptysis, no respiratory infections, no bronchitis.",
            "Constitutional: negative for chills, fever and unexpected weight change. Respiratory: negative for cough "
            "and shortness of breath. Cardiovascular: negative for chest pain and leg swelling. Gastrointestinal: negative "
            "for abdominal pain, nausea and vomiting. Genitourinary: negative for dysuria. Skin: negative for rash. "
            "Neurological: negative for dizziness and headaches. Psychiatric: the patient is not nervous/anxious.",
            "a complete 10 point review of systems was performed and is negative except as noted in the hpi.",
            "otherwise negative. pt denies f/c/s, n/v/d, cp, sob, abd pain, dysuria."),
    "vitals": ("BP <110-134>/<64-84> | HR <58-92> | RR <12-18> | Temp <97.6-98.9> F | SpO2 <95-99>% | Wt <120-240> lb",
               "bp <112-132>/<66-82>, pulse <60-90>, temp <97.7-98.8>, resp <12-18>, o2 sat <95-100>% ra",
               "T <97.8-98.9> HR <62-96> BP <108-136>/<62-86> RR <14-20> SpO2 <94-99>%"),
    "exam": ("GENERAL: well-appearing, in no acute distress. HEENT: normocephalic, atraumatic, PERRL, EOMI. NECK: supple, "
             "no JVD. LUNGS: clear to auscultation bilaterally, no wheezes, rales or rhonchi. HEART: regular rate and rhythm, "
             "S1 S2 normal, no murmurs. ABDOMEN: soft, non-tender, non-distended, normal bowel sounds. EXTREMITIES: no "
             "clubbing or cyanosis. NEURO: alert and oriented x3, CN II-XII grossly intact. SKIN: warm and dry.",
             "Constitutional: NAD. Eyes: conjunctivae normal. Cardiovascular: normal rate, normal heart sounds. Pulmonary: "
             "effort normal, breath sounds normal. Abdominal: soft, bowel sounds normal, no tenderness. Musculoskeletal: "
             "normal range of motion. Neurological: alert, no focal deficit. Psychiatric: mood and affect normal.",
             "gen: aaox3, nad. cv: rrr, no m/r/g. resp: ctab. abd: s/nt/nd. ext: wwp. neuro: nonfocal."),
    "technique": ("multiplanar images were obtained without intravenous contrast.", "frontal and lateral views of the chest were obtained.",
                  "transthoracic echocardiogram with doppler and color flow imaging.",
                  "specimen received in formalin, labeled with the patient's name and @mrn@."),
    "insurance": ("primary insurance: @insurance@ group subscriber number: @subnum@ secondary insurance: n/a primary "
                  "language spoken: english interpreter present: no any relevant changes to medical status: no recent "
                  "falls: no precautions: see surgical protocol in media file, currently phase <1-3>",),
    "procedure": ("procedure: performed under moderate sedation after informed consent was obtained. time out performed.",
                  "anesthesia: general endotracheal. estimated blood loss: <5-250> ml. complications: none.",
                  "the patient was brought to the operating room and placed supine. prepped and draped in sterile fashion."),
}

FILLER: dict[str, tuple[str, ...]] = {
    "clinic": (
        "discussed diet and exercise, goal of <150-200> minutes of moderate activity per week.", "patient verbalized understanding of the plan and agrees.",
        "medication list reviewed and reconciled today.", "all questions answered. return precautions reviewed.",
        "labs from @date@ reviewed with the patient in detail.", "continue current regimen and monitor at home.",
        "age appropriate screening discussed.", "counseled on importance of medication adherence and follow up.",
        "no recent hospitalizations or ed visits.", "patient reports compliance with medications and denies side effects.",
        "pt is doing well overall since last visit.", "sleeping <5-8> hours per night, appetite good.",
        "will obtain records from outside provider @name@.", "health maintenance: vaccines reviewed, eye exam up to date per patient.",
        "advised to bring home readings to next appointment.", "patient walks <1-3> miles most days without limitation.",
        "time spent: <25-45> minutes, more than half in counseling and coordination of care.", "reviewed prior imaging and specialist notes from @date@.",
        "fall risk screen negative. depression screen reviewed.", "patient's daughter present for the visit and contributed to history.",
        "mychart message sent with results.", "advance care planning discussed; patient wishes to remain full code.",
        "seen and examined with attending @name@.", "interval history: since the last visit on @date@ the patient has been feeling about the same.",
        "she traveled to visit family last month and did well.", "he started a new job and reports more stress at work.",
        "weight is down <2-9> lbs since last visit with dietary changes.", "reports good energy and mood, no new complaints today.",
        "referral placed to @name@ for further evaluation.", "prior authorization submitted for medication.",
        "patient prefers to hold off on changes until next visit.", "will reassess in <3-6> months or sooner as needed.",
        "the risks, benefits and alternatives were discussed.", "patient uses a pill box and a pharmacy delivery service.",
        "outside records reviewed: last visit with specialist on @date@.", "denies recent travel or sick contacts.",
        "patient asked about the shingles vaccine; information provided.", "home health aide assists <2-5> days per week."),
    "hospital": (
        "patient was admitted to the medicine service and monitored on telemetry.", "hospital course was uncomplicated. tolerated diet, ambulating with physical therapy.",
        "iv fluids were given with improvement in symptoms.", "pain controlled with oral analgesics.",
        "seen by case management; discharged home with services.", "blood cultures with no growth at <2-5> days.",
        "daily labs trended and electrolytes repleted as needed.", "pt/ot evaluated and recommended home with outpatient therapy.",
        "on hospital day <2-6> the patient was stable for discharge.", "code status: full code. dvt prophylaxis with heparin subq.",
        "discussed with family at bedside; all questions answered.", "medication reconciliation completed at discharge.",
        "follow up with pcp @name@ within <5-14> days of discharge.", "diet: regular. activity: as tolerated.",
        "vital signs remained stable throughout the admission.", "repeat labs prior to discharge were within normal limits.",
        "in the ed, the patient received <1-2> liters of normal saline.", "ekg: normal sinus rhythm, rate <62-96>, no acute st changes.",
        "patient was transferred from @hospital@ for a higher level of care.", "admitted to step-down unit overnight for monitoring.",
        "infectious disease was consulted and recommended narrowing antibiotics.", "foley catheter removed on day <2-4>, voiding spontaneously.",
        "the patient was seen and examined on the day of discharge.", "home medications were resumed except as noted.",
        "pending at discharge: final culture results, to be followed by @name@.", "overnight events: none. afebrile, hemodynamically stable."),
    "data": (
        "wbc <4.1-10.8>, hgb <12.1-15.4>, plt <160-390>.", "na <136-144>, k <3.6-4.9>, cl <98-106>, co2 <22-29>, bun <8-22>, cr <0.6-1.1>, glu <78-118>.",
        "ast <14-38>, alt <10-41>, alk phos <45-110>, t bili <0.3-1.1>, albumin <3.6-4.7>.", "hba1c <4.8-5.6>%. tsh <0.6-3.9>. vitamin b12 <310-820>.",
        "lipid panel: total cholesterol <140-195>, hdl <42-78>, ldl <60-128>, triglycerides <70-148>.", "ua: negative for protein, glucose and blood.",
        "inr <0.9-1.1>, ptt <26-34>.", "ekg: sinus rhythm at <58-90> bpm, normal axis, normal intervals.",
        "cxr: no acute cardiopulmonary process.", "magnesium <1.8-2.4>, phosphorus <2.6-4.3>.", "urine culture: no growth.",
        "ferritin <40-180>, iron saturation <22-45>%."),
    "phone": ("pt called the office requesting a call back.", "spoke with patient, two identifiers verified.",
              "message routed to provider for review.", "pt advised to call back or go to ed if symptoms worsen.",
              "refill sent to pharmacy on file.", "left voicemail on patient's phone @phone@.", "pt agrees with plan.",
              "scheduled follow up appointment on @date@.", "results discussed with patient by phone.",
              "pharmacy @name@ called to clarify prescription.", "pt reports the medication was not covered by insurance.",
              "patient's husband called on her behalf, consent on file.", "form completed and faxed to @fax@."),
    "counsel": ("met with patient and family to discuss discharge needs.", "reviewed a low sodium, heart healthy diet with handouts.",
                "patient reports eating <2-3> meals per day with frequent snacking.", "goals: increase vegetables, reduce sugary drinks.",
                "patient lives with spouse who is supportive.", "provided information on community resources and transportation.",
                "motivational interviewing used; patient identified barriers to change.", "mood described as 'okay', affect congruent.",
                "safety assessment completed, denies si/hi.", "insurance and medication cost concerns addressed.",
                "patient agreeable to follow up in <2-6> weeks.", "sleep hygiene reviewed.", "coordinated with pcp office and home care agency."),
    "radiology": ("the lungs are clear. no pleural effusion or pneumothorax.", "heart size is normal. mediastinal contours are unremarkable.",
                  "no acute osseous abnormality.", "visualized soft tissues are unremarkable.", "no free air under the diaphragm.",
                  "degenerative changes of the thoracic spine.", "comparison is made to prior study dated @date@.",
                  "left ventricular size and wall thickness are normal.", "no pericardial effusion.", "lines and tubes are in appropriate position.",
                  "sections show benign fibroadipose tissue.", "margins are negative, closest margin <1-9> mm.",
                  "no suspicious lymphadenopathy.", "the liver, spleen and pancreas are unremarkable.", "kidneys are normal in size without hydronephrosis.",
                  "the visualized bowel loops are nondilated.", "estimated lvef <55-65>%. right ventricle normal in size and function."),
    "therapy": ("pt performed therapeutic exercise x <10-20> minutes: bridges, clamshells, sidelying hip abduction.",
                "manual therapy: soft tissue mobilization to lateral hip and it band.", "gait training with rolling walker <50-200> ft.",
                "pain <2-7>/10 at start of session, <1-5>/10 at end.", "patient tolerated treatment well without increase in symptoms.",
                "rom: hip flexion <90-120> deg, abduction <25-40> deg.", "strength <3-4>+/5 hip abductors.",
                "home exercise program reviewed and updated.", "continue per protocol, plan to progress to phase ii next week.",
                "patient reports improved tolerance to stairs and sit to stand.", "ice applied x 10 minutes post treatment.",
                "neuromuscular re-education: single leg balance <10-30> seconds.", "goals: independent community ambulation without device in <4-8> weeks."),
    "instructions": ("please take your medications as prescribed.", "call the office at @phone@ with any questions.",
                     "go to the nearest emergency room if you have chest pain, trouble breathing or fainting.",
                     "drink plenty of fluids and get plenty of rest.", "your next appointment is on @date@.",
                     "eat a diet low in salt and saturated fat.", "you can view your results on mychart.",
                     "bring all of your medication bottles to your next visit.", "stay active: walk at least 30 minutes a day.",
                     "if your symptoms do not improve in <3-7> days, call us.", "get your blood work done <1-2> weeks before your next visit.",
                     "check your blood pressure at home and write down the numbers."),
    "nursing": ("pt resting comfortably in bed, call bell within reach.", "vitals stable, see flowsheet.",
                "iv site clean, dry and intact.", "pt ambulated in hallway with assistance.", "medications administered per mar.",
                "skin intact, no pressure injury noted.", "will continue to monitor.", "fall precautions in place.",
                "pre-infusion assessment completed, labs reviewed and within parameters.", "port accessed with positive blood return."),
    "procedure": ("the scope was advanced without difficulty.", "hemostasis was achieved with electrocautery.",
                  "the wound was irrigated and closed in layers.", "the patient tolerated the procedure well.",
                  "specimens sent to pathology.", "sponge and needle counts were correct.",
                  "the patient was extubated and taken to pacu in stable condition.", "airway: mallampati <1-3>, good mouth opening.",
                  "npo status confirmed. consent signed and in chart.", "asa class <2-3>. plan for general anesthesia."),
}

SHORT_TEXTS: tuple[str, ...] = ("pt no show.", "see scanned document.", "lvm to call back.", "refill sent.",
                                "results reviewed, wnl.", "signed by @name@.", "error, disregard.", "see media tab.",
                                "appt cancelled by pt.", "fax received.")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "hpi": ("{age} yo {sex} with hx of {hx} who presents for {reason}.", "{age} y/o {sex} with pmh significant for {hx}, here for {reason}.",
            "pt is a {age} year old {sex} with {hx}. presents today for {reason}."),
    "call": ("pt called regarding {reason}.", "telephone call with patient about {reason}.", "note: {reason} discussed with patient.",
             "spoke with pt re: {reason}."),
    "nursing": ("pt seen for {reason}.", "nursing assessment: {reason}.", "pt here for {reason}."),
    "letter": ("dear @name@, i had the pleasure of seeing our mutual patient on @date@ regarding {reason}.",
               "to whom it may concern: this patient is under my care for {reason}."),
    "counsel": ("pt seen for {reason}.", "referred by @name@ for {reason}.", "visit regarding {reason}."),
    "erroneous": ("this note was entered in error. {reason}.", "wrong patient - disregard. {reason}."),
    "negation": ("denies {x}.", "no history of {x}.", "negative for {x}.", "no known {x}.", "pt denies any {x}.", "{x} ruled out."),
    "family": ("mother with {x}.", "father with {x}, dx at age <45-75>.", "brother with {x}.", "sister had {x}.",
               "family history of {x} in maternal grandmother."),
    "plan": ("", " - continue current management.", " - stable, recheck at next visit.", " - will monitor.",
             " - discussed, see orders.", " - improved."),
}

GENERIC_MEDS: tuple[str, ...] = ("multivitamin daily", "acetaminophen 500 mg prn", "fish oil 1000 mg daily",
                                 "ibuprofen 400 mg prn", "docusate 100 mg bid", "loratadine 10 mg daily")
SEX_WORDS = {"F": ("female", "woman", "f"), "M": ("male", "man", "m")}

# --- context phenomena -------------------------------------------------------------------------------
# Organ system of an ICD-10-CM code: by its category (3 characters) where listed, else by its chapter
# letter; symptom (R) and encounter (Z) codes are placed by the system they concern. Negations and
# rule-outs are drawn from the systems of the patient's conditions and the visit's complaint, as a
# clinician's pertinent negatives are.
SYSTEMS: dict[str, str] = {
    "A": "infection", "B": "infection", "C": "neoplasm", "D": "blood", "E": "endocrine", "F": "mental",
    "G": "nervous", "H": "eye and ear", "I": "circulatory", "J": "respiratory", "K": "digestive", "L": "skin",
    "M": "musculoskeletal", "N": "genitourinary", "O": "pregnancy", "S": "musculoskeletal", "T": "injury",
    "U": "respiratory", "D50": "blood", "D64": "blood",
    "R00": "circulatory", "R07": "circulatory", "R55": "circulatory", "R60": "circulatory", "R05": "respiratory",
    "R06": "respiratory", "R10": "digestive", "R11": "digestive", "R19": "digestive", "R63": "digestive",
    "R42": "nervous", "R51": "nervous", "R31": "genitourinary", "R73": "endocrine", "R21": "skin", "R50": "infection",
    "Z95": "circulatory", "Z86": "nervous", "Z87": "respiratory", "Z99": "genitourinary", "Z12": "neoplasm",
    "Z51": "neoplasm", "Z96": "musculoskeletal", "Z47": "musculoskeletal", "Z68": "endocrine", "Z21": "infection",
}

# Near-identical codes (paper 4.4: G44.029 vs G44.329): one per patient. A note may evidence a member by
# a phrase the group shares plus, in a separate sentence, the modifier that tells the members apart; the
# unspecified members (I48.91, C50.919) have no modifier: the shared phrase alone is their evidence.
SIBLING_GROUPS: dict[str, dict] = {
    "E11": {"shared": ("type 2 diabetes", "DM2", "T2DM", "diabetes mellitus type 2"),
            "modifiers": {"E11.9": ("diabetes is well controlled without complications", "HbA1c <6.5-7.2>%, at goal"),
                          "E11.65": ("diabetes is poorly controlled with hyperglycemia", "HbA1c <8.1-11.9>%, above goal",
                                     "fingerstick glucose <250-380> today")}},
    "I48": {"shared": ("atrial fibrillation", "afib", "AF"),
            "modifiers": {"I48.0": ("episodes are paroxysmal, self-terminating", "holter: brief runs, longest <2-9> hours"),
                          "I48.20": ("rhythm has been persistent for years, rate controlled", "longstanding, permanent pattern"),
                          "I48.91": ()}},
    "G44": {"shared": ("chronic daily headaches", "chronic headaches"),
            "modifiers": {"G44.029": ("attacks are unilateral and orbital, in a cluster pattern",),
                          "G44.329": ("headaches began after a head injury",),
                          "G44.229": ("pain is bilateral and band-like, tension type",)}},
    "C50": {"shared": ("breast cancer", "breast carcinoma", "invasive ductal carcinoma of the breast"),
            "modifiers": {"C50.911": ("tumor is in the right breast", "s/p right lumpectomy"),
                          "C50.912": ("tumor is in the left breast", "s/p left lumpectomy"),
                          "C50.919": ()}},
}

# Word-level rewrites an author may have as a habit (abbreviations, expansions, clinical shorthand):
# each simulated author adopts about half of them, each with one fixed alternative.
VARIANT_RULES: dict[str, tuple[str, ...]] = {
    "type 2": ("type ii", "t2", "type-2"), "diabetes mellitus": ("dm", "diabetes"), "diabetes": ("dm", "diabetes mellitus"),
    "hypertension": ("htn", "high bp"), "disease": ("dz", "d/o"), "disorder": ("d/o", "dz"), "chronic": ("chr", "longstanding"),
    "history of": ("hx of", "h/o"), "with": ("w/",), "without": ("w/o", "wo"), "left": ("lt", "l"), "right": ("rt", "r"),
    "bilateral": ("b/l", "bilat"), "fracture": ("fx",), "cancer": ("ca", "malignancy"), "carcinoma": ("ca", "cancer"),
    "infection": ("infxn", "inf"), "atrial fibrillation": ("a-fib", "a fib", "atrial fib"), "afib": ("a-fib", "a fib"),
    "pain": ("pn", "discomfort"), "syndrome": ("synd", "sx"), "deficiency": ("def", "insufficiency"),
    "heart failure": ("hf", "cardiac failure"), "kidney": ("renal",), "stage 3": ("stage iii", "st 3"),
    "headaches": ("ha's", "cephalgia"), "headache": ("ha", "cephalgia"), "osteoarthritis": ("oa", "degenerative arthritis"),
    "depression": ("depressive sx", "low mood"), "anxiety": ("anx", "anxiousness"), "daily": ("qd", "q day", "once a day"),
    "bid": ("b.i.d.", "twice daily"), "tid": ("t.i.d.", "three times daily"), "qhs": ("at bedtime", "q.h.s."),
    "prn": ("as needed", "p.r.n."), "mg": ("mg.", "milligrams"), "uncontrolled": ("poorly controlled", "not at goal"),
    "obesity": ("obese habitus", "elevated bmi"), "hyperlipidemia": ("hyperlipemia", "lipid disorder"),
    "pulmonary": ("pulm",), "tablet": ("tab",), "patient": ("pt",), "abdominal": ("abd",), "shortness of breath": ("sob", "dyspnea"),
}

# Rule-outs: a condition suspected early in the note and excluded later (the cue sentence).
RULE_OUT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "suspect": ("concern for {x}", "evaluate for {x}", "possible {x}", "question of {x}"),
    "excluded": ("{x} ruled out", "{x} was excluded", "workup negative for {x}", "no evidence of {x} on workup"),
}
