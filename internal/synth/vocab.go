package synth

import (
	"strconv"
	"strings"
)

// categoryTable lists every leaf category with its median price in PLN.
// Lines are "path median"; the top-level segment selects brands and
// attributes from topTable.
const categoryTable = `
Electronics/Phones/Smartphones 1500
Electronics/Phones/Feature Phones 180
Electronics/Phones/Accessories/Cases 40
Electronics/Phones/Accessories/Chargers 70
Electronics/Phones/Accessories/Screen Protectors 25
Electronics/Computers/Laptops 3500
Electronics/Computers/Desktops 3000
Electronics/Computers/Tablets 1400
Electronics/Computers/Components/Graphics Cards 2200
Electronics/Computers/Components/Processors 1200
Electronics/Computers/Components/Memory 250
Electronics/Computers/Components/SSD Drives 300
Electronics/Computers/Peripherals/Keyboards 180
Electronics/Computers/Peripherals/Mice 110
Electronics/Computers/Peripherals/Monitors 900
Electronics/Audio/Headphones 350
Electronics/Audio/Speakers 450
Electronics/Audio/Soundbars 900
Electronics/TV/Televisions 2800
Electronics/TV/Projectors 2000
Electronics/Cameras/Mirrorless Cameras 5000
Electronics/Cameras/Lenses 2500
Electronics/Cameras/Action Cameras 1200
Electronics/Gaming/Consoles 2200
Electronics/Gaming/Controllers 250
Electronics/Gaming/Games 180
Electronics/Wearables/Smartwatches 900
Electronics/Wearables/Fitness Bands 200
Home/Kitchen/Coffee Makers 1400
Home/Kitchen/Kettles 150
Home/Kitchen/Blenders 300
Home/Kitchen/Cookware/Pots 200
Home/Kitchen/Cookware/Pans 150
Home/Kitchen/Knives 180
Home/Kitchen/Toasters 160
Home/Appliances/Washing Machines 2200
Home/Appliances/Refrigerators 3000
Home/Appliances/Vacuum Cleaners 800
Home/Appliances/Dishwashers 2000
Home/Furniture/Sofas 2500
Home/Furniture/Chairs 350
Home/Furniture/Tables 700
Home/Furniture/Beds 1800
Home/Furniture/Wardrobes 1500
Home/Decor/Lamps 180
Home/Decor/Rugs 300
Home/Decor/Curtains 120
Home/Decor/Candles 40
Home/Bedding/Duvets 200
Home/Bedding/Pillows 80
Home/Bathroom/Towels 60
Fashion/Women/Shoes 250
Fashion/Women/Dresses 220
Fashion/Women/Jackets 400
Fashion/Women/Bags 300
Fashion/Women/Jeans 200
Fashion/Women/Tops 90
Fashion/Women/Lingerie 110
Fashion/Men/Shoes 280
Fashion/Men/Shirts 150
Fashion/Men/Jackets 450
Fashion/Men/Jeans 220
Fashion/Men/Suits 900
Fashion/Men/T-Shirts 70
Fashion/Kids/Shoes 140
Fashion/Kids/Jackets 200
Fashion/Accessories/Watches 600
Fashion/Accessories/Sunglasses 250
Fashion/Accessories/Belts 90
Fashion/Accessories/Jewellery/Rings 400
Fashion/Accessories/Jewellery/Necklaces 350
Sports/Cycling/Bikes 2800
Sports/Cycling/Helmets 250
Sports/Cycling/Bike Lights 90
Sports/Running/Running Shoes 450
Sports/Running/Running Apparel 150
Sports/Fitness/Dumbbells 200
Sports/Fitness/Treadmills 3500
Sports/Fitness/Yoga Mats 90
Sports/Outdoor/Tents 700
Sports/Outdoor/Sleeping Bags 350
Sports/Outdoor/Backpacks 300
Sports/Outdoor/Trekking Poles 180
Sports/Winter/Skis 1800
Sports/Winter/Snowboards 1600
Sports/Winter/Ski Goggles 250
Sports/Team Sports/Football/Balls 120
Sports/Team Sports/Football/Boots 400
Sports/Team Sports/Basketball/Balls 130
Sports/Water Sports/Swimwear 120
Sports/Water Sports/Kayaks 2500
Kids/Toys/Building Blocks 250
Kids/Toys/Dolls 120
Kids/Toys/Board Games 130
Kids/Toys/Puzzles 60
Kids/Toys/RC Cars 220
Kids/Baby/Strollers 1800
Kids/Baby/Car Seats 1100
Kids/Baby/Diapers 70
Kids/Baby/Bottles 45
Kids/School/Backpacks 160
Kids/School/Pencil Cases 40
Kids/Furniture/Cots 700
Kids/Furniture/Desks 600
Beauty/Fragrances/Women 350
Beauty/Fragrances/Men 320
Beauty/Skincare/Face Creams 90
Beauty/Skincare/Serums 120
Beauty/Skincare/Sunscreen 60
Beauty/Makeup/Lipsticks 60
Beauty/Makeup/Foundations 110
Beauty/Makeup/Mascaras 70
Beauty/Hair/Shampoos 35
Beauty/Hair/Hair Dryers 300
Beauty/Hair/Straighteners 250
Beauty/Men/Shavers 400
Beauty/Men/Beard Care 60
Automotive/Parts/Brakes/Brake Pads 180
Automotive/Parts/Brakes/Brake Discs 250
Automotive/Parts/Filters/Oil Filters 40
Automotive/Parts/Filters/Air Filters 50
Automotive/Parts/Lighting/Headlights 600
Automotive/Parts/Lighting/Bulbs 30
Automotive/Tyres/Summer Tyres 350
Automotive/Tyres/Winter Tyres 380
Automotive/Tyres/All-Season Tyres 400
Automotive/Electronics/Dash Cams 350
Automotive/Electronics/Car Audio 500
Automotive/Electronics/GPS Navigation 450
Automotive/Care/Waxes 50
Automotive/Care/Cleaning Kits 80
Automotive/Accessories/Seat Covers 150
Automotive/Accessories/Roof Boxes 1400
Garden/Tools/Lawn Mowers 1500
Garden/Tools/Hedge Trimmers 450
Garden/Tools/Shovels 80
Garden/Tools/Pruners 70
Garden/Furniture/Garden Chairs 200
Garden/Furniture/Garden Tables 500
Garden/Furniture/Loungers 400
Garden/Furniture/Parasols 250
Garden/Plants/Seeds 12
Garden/Plants/Bulbs 25
Garden/Plants/Fertilisers 40
Garden/Grills/Gas Grills 1800
Garden/Grills/Charcoal Grills 600
Garden/Grills/Accessories 80
Garden/Watering/Hoses 120
Garden/Watering/Sprinklers 90
Garden/Pools/Inflatable Pools 400
Books/Fiction/Crime 40
Books/Fiction/Fantasy 45
Books/Fiction/Romance 35
Books/Fiction/Science Fiction 42
Books/Non-Fiction/Biographies 50
Books/Non-Fiction/History 60
Books/Non-Fiction/Cookbooks 70
Books/Non-Fiction/Travel Guides 55
Books/Children/Picture Books 35
Books/Children/Young Adult 40
Books/Comics/Manga 30
Books/Comics/Graphic Novels 60
Books/Textbooks/Languages 80
Books/Textbooks/Mathematics 90
Health/Supplements/Vitamins 45
Health/Supplements/Protein 130
Health/Supplements/Omega-3 60
Health/Medical Devices/Blood Pressure Monitors 180
Health/Medical Devices/Thermometers 60
Health/Medical Devices/Pulse Oximeters 90
Health/Personal Care/Electric Toothbrushes 300
Health/Personal Care/Water Flossers 250
Health/Orthopaedics/Braces 120
Health/Orthopaedics/Insoles 70
Pets/Dogs/Food 150
Pets/Dogs/Beds 180
Pets/Dogs/Leashes 60
Pets/Dogs/Toys 35
Pets/Cats/Food 120
Pets/Cats/Litter 50
Pets/Cats/Scratching Posts 200
Pets/Cats/Toys 30
Pets/Aquarium/Tanks 500
Pets/Aquarium/Filters 150
Pets/Birds/Cages 250
Office/Paper/Printer Paper 30
Office/Paper/Notebooks 20
Office/Writing/Pens 15
Office/Writing/Fountain Pens 250
Office/Furniture/Office Chairs 800
Office/Furniture/Standing Desks 1600
Office/Equipment/Printers 700
Office/Equipment/Shredders 350
Office/Equipment/Calculators 60
Office/Storage/Binders 15
Office/Storage/Filing Cabinets 600
`

// attrDef is one attribute key and the values it draws from.
type attrDef struct {
	key    string
	values []string
}

// topDef holds the brands, attributes and price spread of a top-level
// category.
type topDef struct {
	brands []string
	attrs  []attrDef
	sigma  float64 // log-normal spread of prices around the leaf median
}

// topTable returns the per-top-category vocabulary. It builds a fresh map
// on each call; the generator calls it once.
func topTable() map[string]topDef {
	colours := attrDef{"colour", []string{"black", "white", "silver", "grey", "blue", "red", "green", "navy", "beige", "pink", "gold", "brown"}}
	sizes := attrDef{"size", []string{"XS", "S", "M", "L", "XL", "XXL"}}
	shoeSizes := attrDef{"shoe_size", []string{"36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46"}}
	materials := attrDef{"material", []string{"cotton", "polyester", "leather", "wool", "linen", "steel", "aluminium", "plastic", "wood", "glass", "ceramic", "bamboo"}}
	return map[string]topDef{
		"Electronics": {
			brands: []string{"Samsung", "Apple", "Xiaomi", "Sony", "LG", "Lenovo", "Dell", "HP", "Asus", "Acer", "Logitech", "JBL", "Philips", "Huawei", "Motorola", "Nokia", "Canon", "Nikon", "Garmin", "Realme"},
			attrs: []attrDef{colours,
				{"storage", []string{"64GB", "128GB", "256GB", "512GB", "1TB"}},
				{"ram", []string{"4GB", "8GB", "16GB", "32GB"}},
				{"screen_size", []string{"6.1\"", "6.7\"", "13.3\"", "15.6\"", "27\"", "55\"", "65\""}},
				{"warranty", []string{"12 months", "24 months", "36 months"}},
				{"connectivity", []string{"Bluetooth", "Wi-Fi", "USB-C", "5G", "LTE"}}},
			sigma: 0.55,
		},
		"Home": {
			brands: []string{"Bosch", "Tefal", "DeLonghi", "Philips", "IKEA", "Zwilling", "Fiskars", "Electrolux", "Siemens", "Krups", "Russell Hobbs", "Ambition", "Dyson", "Whirlpool", "Smeg"},
			attrs:  []attrDef{colours, materials, {"power", []string{"800W", "1200W", "1500W", "2000W", "2400W"}}, {"capacity", []string{"0.5l", "1l", "1.7l", "5l", "8kg"}}, {"energy_class", []string{"A", "B", "C", "D", "E"}}},
			sigma:  0.6,
		},
		"Fashion": {
			brands: []string{"Nike", "Adidas", "Zara", "H&M", "Reserved", "Levi's", "Tommy Hilfiger", "Calvin Klein", "Puma", "Guess", "Wittchen", "Ochnik", "CCC", "Lasocki", "Mohito", "Vistula"},
			attrs:  []attrDef{colours, sizes, shoeSizes, materials, {"fit", []string{"slim", "regular", "oversize", "relaxed"}}, {"gender", []string{"women", "men", "unisex"}}},
			sigma:  0.5,
		},
		"Sports": {
			brands: []string{"Decathlon", "Kross", "Salomon", "The North Face", "Head", "Atomic", "Nike", "Adidas", "Asics", "Garmin", "Shimano", "Columbia", "Quechua", "Mizuno"},
			attrs:  []attrDef{colours, sizes, shoeSizes, materials, {"weight", []string{"0.5kg", "1kg", "2.5kg", "5kg", "10kg", "15kg"}}, {"level", []string{"beginner", "intermediate", "pro"}}},
			sigma:  0.55,
		},
		"Kids": {
			brands: []string{"LEGO", "Mattel", "Hasbro", "Chicco", "Cybex", "Pampers", "Fisher-Price", "Trefl", "Smoby", "Britax", "Maxi-Cosi", "Playmobil"},
			attrs:  []attrDef{colours, materials, {"age", []string{"0+", "3+", "6+", "8+", "12+"}}, {"pieces", []string{"100", "500", "1000", "1500"}}},
			sigma:  0.5,
		},
		"Beauty": {
			brands: []string{"L'Oréal", "Nivea", "Maybelline", "Ziaja", "Dior", "Chanel", "Braun", "Remington", "Vichy", "La Roche-Posay", "Bielenda", "Eveline", "Inglot"},
			attrs:  []attrDef{{"volume", []string{"15ml", "30ml", "50ml", "100ml", "250ml"}}, {"skin_type", []string{"dry", "oily", "combination", "sensitive", "all"}}, {"scent", []string{"floral", "woody", "citrus", "fresh", "oriental"}}},
			sigma:  0.5,
		},
		"Automotive": {
			brands: []string{"Bosch", "Brembo", "Michelin", "Continental", "Goodyear", "Dębica", "Osram", "Philips", "Mann-Filter", "Castrol", "Thule", "Navitel", "Xblitz"},
			attrs:  []attrDef{{"fits", []string{"VW Golf", "Skoda Octavia", "Toyota Corolla", "Opel Astra", "Ford Focus", "universal"}}, {"tyre_size", []string{"195/65 R15", "205/55 R16", "225/45 R17", "235/40 R18"}}, {"season", []string{"summer", "winter", "all-season"}}},
			sigma:  0.5,
		},
		"Garden": {
			brands: []string{"Gardena", "Fiskars", "Stihl", "Husqvarna", "Weber", "Bosch", "Kärcher", "Makita", "Intex", "Bestway", "Keter"},
			attrs:  []attrDef{colours, materials, {"power", []string{"500W", "1000W", "1800W", "cordless 18V", "petrol"}}, {"length", []string{"10m", "20m", "30m", "50m"}}},
			sigma:  0.6,
		},
		"Books": {
			brands: []string{"Znak", "Wydawnictwo Literackie", "Rebis", "Penguin", "HarperCollins", "Egmont", "Prószyński", "Muza", "Insignis"},
			attrs:  []attrDef{{"language", []string{"polish", "english", "german"}}, {"cover", []string{"paperback", "hardcover", "ebook"}}, {"pages", []string{"120", "240", "320", "480", "700"}}},
			sigma:  0.35,
		},
		"Health": {
			brands: []string{"Omron", "Braun", "Oral-B", "Philips", "Olimp", "Doppelherz", "Centrum", "Waterpik", "Medisana", "Microlife"},
			attrs:  []attrDef{{"pack_size", []string{"30 pcs", "60 pcs", "90 pcs", "120 pcs"}}, {"flavour", []string{"neutral", "vanilla", "chocolate", "strawberry"}}, colours},
			sigma:  0.45,
		},
		"Pets": {
			brands: []string{"Royal Canin", "Purina", "Whiskas", "Pedigree", "Trixie", "Kong", "Brit", "Acana", "Tetra", "JBL"},
			attrs:  []attrDef{{"weight", []string{"1kg", "2kg", "4kg", "10kg", "15kg"}}, {"pet_size", []string{"small", "medium", "large"}}, colours},
			sigma:  0.5,
		},
		"Office": {
			brands: []string{"Pilot", "Parker", "Leitz", "Fellowes", "Brother", "HP", "Canon", "Epson", "Oxford", "Esselte", "Casio", "Herman Miller"},
			attrs:  []attrDef{colours, {"format", []string{"A4", "A5", "A3", "B5"}}, {"pack_size", []string{"1 pc", "10 pcs", "50 pcs", "500 sheets"}}},
			sigma:  0.5,
		},
	}
}

// category is one leaf of the tree with its price parameters.
type category struct {
	path   string
	top    string
	noun   string  // a title-friendly name of the leaf
	median float64 // median price in PLN
}

// parseCategories parses categoryTable, keeping its order. Lines that do
// not parse are skipped; TestCategoryTree checks that there are none.
func parseCategories() []category {
	var out []category
	for _, line := range strings.Split(categoryTable, "\n") {
		line = strings.TrimSpace(line)
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		median, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		path := line[:i]
		segs := strings.Split(path, "/")
		if len(segs) < 3 || len(segs) > 4 {
			continue
		}
		out = append(out, category{path: path, top: segs[0], noun: nounOf(segs), median: median})
	}
	return out
}

// nounOf makes a singular-ish title noun of a leaf path.
func nounOf(segs []string) string {
	leaf := segs[len(segs)-1]
	switch leaf {
	case "Accessories", "Food", "Toys", "Beds", "Balls", "Boots", "Filters", "Bulbs", "Women", "Men", "Shoes":
		leaf = segs[len(segs)-2] + " " + leaf
	}
	switch {
	case strings.HasSuffix(leaf, "ies"):
		return leaf[:len(leaf)-3] + "y"
	case strings.HasSuffix(leaf, "sses"), strings.HasSuffix(leaf, "ches"), strings.HasSuffix(leaf, "shes"):
		return leaf[:len(leaf)-2]
	case strings.HasSuffix(leaf, "ss"), strings.HasSuffix(leaf, "ing"), strings.HasSuffix(leaf, "wear"):
		return leaf
	case strings.HasSuffix(leaf, "s"):
		return leaf[:len(leaf)-1]
	}
	return leaf
}

// currency is one ISO 4217 currency the generator prices in.
type currency struct {
	code   string
	perPLN float64 // units of this currency per PLN
	weight int     // relative share of offers
}

func currencies() []currency {
	return []currency{
		{"PLN", 1, 900},
		{"EUR", 0.23, 45},
		{"CZK", 5.8, 25},
		{"HUF", 90, 20},
		{"JPY", 37, 10},
	}
}

func sellerWords() []string {
	return []string{"Tech", "Dom", "Sklep", "Max", "Best", "Euro", "Mega", "Super", "Eko", "Smart", "Pol", "Trade", "Hurt", "Market", "Store", "Outlet", "Expert", "Plus", "Shop", "Center"}
}

func descriptionPhrases() []string {
	return []string{
		"Brand new, shipped within 24 hours.",
		"Free delivery on orders over 100 PLN.",
		"Original packaging, full manufacturer warranty.",
		"Invoice VAT available.",
		"30-day return policy.",
		"Perfect as a gift.",
		"High quality at a great price.",
		"Available for personal pickup in Warsaw.",
		"Ships from our warehouse in Poznań.",
		"Compatible with most popular models.",
		"Energy efficient and quiet.",
		"Customers love its durability.",
	}
}

// hostileFragments are valid UTF-8 strings that stress XML escaping,
// control-character stripping and bidi handling downstream.
func hostileFragments() []string {
	return []string{
		"]]>",
		"<![CDATA[x]]>",
		`&<>"'`,
		"&amp;&lt;",
		"<script>alert(1)</script>",
		"\x0b\x0c\x01\x1f",
		"\x00nul",
		"tab\there\r\nnewline",
		"\u202eRTL override\u202c",
		"שלום עולם",
		"مرحبا بالعالم",
		"😀🔥📱👍🏽",
		"👨‍👩‍👧‍👦",
		"e\u0301\u0301\u0301",
		"\ufeffBOM",
		"\ufffe\uffff",
		"\u2028line\u2029sep",
		"Zażółć gęślą jaźń",
		"\\x00 literally",
		"{{.Title}} ${price} %s %!d",
	}
}
