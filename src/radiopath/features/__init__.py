"""Feature families: handcrafted ultrasound radiomics and cytology nuclear pathomics."""
