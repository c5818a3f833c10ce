//! Word lists for demo data.

/// Catalog names; the last one is a cross-cutting "favourites" catalog.
pub const CATALOGS: [&str; 7] = [
    "Architectural Standard",
    "MEP Library",
    "Plant Equipment",
    "Structural Library",
    "Site & Civil",
    "Electrical Systems",
    "Company Favorites",
];

/// A family of similar components.
pub struct Family {
    pub noun: &'static str,
    pub category: &'static str,
    pub manufacturers: &'static [&'static str],
    pub models: &'static [&'static str],
    pub sizes: &'static [&'static str],
    /// Indexes into [`CATALOGS`].
    pub catalogs: &'static [usize],
}

/// Component families.
pub const FAMILIES: [Family; 12] = [
    Family {
        noun: "Vertical Multistage Pump",
        category: "Pumps",
        manufacturers: &["Grundfos", "Xylem", "KSB"],
        models: &["CR 32-2", "e-SV 33", "Movitec VCF 25", "CR 15-3"],
        sizes: &["DN 65", "DN 50", "DN 80"],
        catalogs: &[2, 1],
    },
    Family {
        noun: "Butterfly Valve",
        category: "Valves",
        manufacturers: &["Emerson", "Flowserve", "Bray"],
        models: &["Keystone F990", "Series 31", "Durco BX2001"],
        sizes: &["DN 100", "DN 150", "DN 200", "DN 250"],
        catalogs: &[2],
    },
    Family {
        noun: "Gate Valve",
        category: "Valves",
        manufacturers: &["Velan", "Crane", "Flowserve"],
        models: &["Class 150 OS&Y", "Class 300 RF", "Aloyco 1300"],
        sizes: &["2\"", "4\"", "6\"", "8\""],
        catalogs: &[2, 1],
    },
    Family {
        noun: "Single Flush Door",
        category: "Doors",
        manufacturers: &["Assa Abloy", "Masonite", "Jeld-Wen"],
        models: &["Ceco Regent", "Architectural 8300", "Steel Series 20"],
        sizes: &["900 x 2100", "1000 x 2100", "36\" x 84\""],
        catalogs: &[0],
    },
    Family {
        noun: "Casement Window",
        category: "Windows",
        manufacturers: &["Pella", "Andersen", "Marvin"],
        models: &["Impervia", "E-Series", "Elevate"],
        sizes: &["600 x 1200", "900 x 1500", "1200 x 1500"],
        catalogs: &[0],
    },
    Family {
        noun: "Rooftop Air Handling Unit",
        category: "HVAC Equipment",
        manufacturers: &["Trane", "Carrier", "Daikin"],
        models: &["Voyager 3", "WeatherMaker 48FC", "Rebel DPS"],
        sizes: &["10 ton", "15 ton", "25 ton"],
        catalogs: &[1],
    },
    Family {
        noun: "LED Troffer",
        category: "Lighting Fixtures",
        manufacturers: &["Signify", "Acuity Brands", "Cooper Lighting"],
        models: &["CoreLine RC132V", "Lithonia BLT", "Metalux 22CZ"],
        sizes: &["600 x 600", "2' x 4'", "1' x 4'"],
        catalogs: &[5, 0],
    },
    Family {
        noun: "Distribution Panelboard",
        category: "Electrical Distribution",
        manufacturers: &["Schneider Electric", "Siemens", "Eaton"],
        models: &["Square D NQ", "P1 Panelboard", "Pow-R-Line 3a"],
        sizes: &["225 A", "400 A", "600 A"],
        catalogs: &[5],
    },
    Family {
        noun: "Wide Flange Beam",
        category: "Structural Steel",
        manufacturers: &["Nucor", "ArcelorMittal", "Gerdau"],
        models: &["W12x26", "W14x30", "HEA 300", "IPE 400"],
        sizes: &["S355", "A992"],
        catalogs: &[3],
    },
    Family {
        noun: "Precast Manhole",
        category: "Drainage",
        manufacturers: &["Forterra", "Oldcastle Infrastructure"],
        models: &["Type A", "Eccentric Cone"],
        sizes: &["1200 mm", "1500 mm", "48\""],
        catalogs: &[4],
    },
    Family {
        noun: "Wall-Hung Water Closet",
        category: "Plumbing Fixtures",
        manufacturers: &["Kohler", "American Standard", "Geberit"],
        models: &["Kingston K-4325", "Afwall FloWise", "Acanto"],
        sizes: &["4.8 Lpf", "6 Lpf"],
        catalogs: &[1, 0],
    },
    Family {
        noun: "Shell and Tube Heat Exchanger",
        category: "Heat Exchangers",
        manufacturers: &["Alfa Laval", "Kelvion", "SPX Flow"],
        models: &["TEMA BEM", "TEMA AES", "Type NEN"],
        sizes: &["20 m²", "45 m²", "120 m²"],
        catalogs: &[2],
    },
];

/// Applications that report usage, with versions.
pub const APPLICATIONS: [&str; 6] = [
    "OpenBuildings Designer 10.12",
    "OpenPlant Modeler 10.11",
    "MicroStation 2024",
    "OpenRoads Designer 2023",
    "AutoPLANT 2023",
    "OpenBuildings Designer 10.11",
];

/// Given names.
pub const FIRST_NAMES: [&str; 24] = [
    "Amelia", "Ben", "Chloé", "Dmitri", "Elif", "Farah", "Gustavo", "Hana", "Ivan", "Jasmine",
    "Kenji", "Lucía", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tamar",
    "Umar", "Vera", "Wei", "Yusuf",
];

/// Family names.
pub const LAST_NAMES: [&str; 20] = [
    "Andersen",
    "Bianchi",
    "Chen",
    "Dubois",
    "Eriksson",
    "Fischer",
    "García",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Walsh",
];
